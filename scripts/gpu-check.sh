#!/usr/bin/env bash
# GPU checks on a CUDA machine (desktop GPU or Jetson), the parts CI cannot run:
#
#   bash scripts/gpu-check.sh OUTDIR [train] [table] [kernel]     (default: train kernel)
#
#   train   a short CUDA training run of configs/overfit-aflw2000.yaml (fp16 AMP + GradScaler,
#           channels-last) and its evaluation                       -> OUTDIR/train-cuda.log
#   table   the teacher table (docs/results/teachers.md) on the GPU -> OUTDIR/teachers-table.md
#           rows from TABLE_ROWS (default: all), stopped after TABLE_TIMEOUT s (default 1800);
#           finished rows are kept
#   build   the default-model build (docs/models.md) trained on the GPU, every core labelling and
#           rendering, into OUTDIR/build; extra key=value settings from BUILD_OVERRIDES, e.g.
#           BUILD_OVERRIDES="student.name=efficientnet_b0_s4 student.init=teacher"  -> OUTDIR/build.log
#           (needs the WHENet teacher in the edgepose cache: edgepose import whenet --from-pypi)
#   kernel  pytest -m gpu (pycuda crop kernel == its NumPy reference, == edgepose.preprocess;
#           TensorRT tests skip without tensorrt) and the kernel timing
#           (edgepose-bench gpu-preprocess)                       -> OUTDIR/gpu-tests.log,
#                                                                      OUTDIR/gpu-preprocess.{md,json}
#
# Needs: the edgepose package installed (pip install -e ".[dev]"; `build` also the profile extra and
# mediapipe==0.10.14 --no-deps, docs/profiling.md), torch with CUDA, and for
# `kernel` pycuda (`pip install pycuda`, which compiles against nvcc) and nvcc on the PATH.
# EDGEPOSE_TEST_DATA points at the shared test data (default ../shared/data); PYTHON picks the
# interpreter (default python3).  Each step runs even if an earlier one failed; the exit status
# is non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu-check.sh OUTDIR [train] [table] [build] [kernel]}
shift
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(train kernel)
mkdir -p "$out"
py=${PYTHON:-python3}
# -P: do not put the working directory first on sys.path, so the installed edgepose (with its
# mapped subpackages edgepose.jetson etc.) is imported rather than the source folder.
run_py() { "$py" -P "$@"; }
data=${EDGEPOSE_TEST_DATA:-$(cd .. && pwd)/shared/data}
export EDGEPOSE_TEST_DATA=$data PYTHONUNBUFFERED=1
status=0

{
  echo "# $(date -u +%FT%TZ) $(uname -m)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || true
  command -v nvcc >/dev/null && nvcc --version | tail -2
  run_py -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
  run_py -c "import pycuda; print('pycuda', pycuda.VERSION_TEXT)" 2>/dev/null || echo "pycuda: not installed"
} > "$out/environment.txt" 2>&1
cat "$out/environment.txt"

for step in "${steps[@]}"; do
  case $step in
    train)
      run=$(mktemp -d)
      { /usr/bin/env time -f "wall %e s" "$py" -P -m edgepose.cli.main train configs/overfit-aflw2000.yaml \
          device=cuda amp=true channels_last=true "data.train.root=$data/aflw2000-sample" \
          "data.val.root=$data/aflw2000-sample" "output=$run" \
        && run_py -m edgepose.cli.main eval "$run/best.pt" --data "aflw2000:$data/aflw2000-sample" --aligned \
          --no-progress --device cuda -o "$out/train-cuda-eval.json"; } > "$out/train-cuda.log" 2>&1 || status=1
      tail -25 "$out/train-cuda.log" ;;
    table)
      rows=(); [ -n "${TABLE_ROWS:-}" ] && rows=(--rows $TABLE_ROWS)
      timeout "${TABLE_TIMEOUT:-1800}" "$py" -P -m edgepose.cli.main bench methods "${rows[@]}" \
        --configs "$PWD/configs/teachers" --runs "$(mktemp -d)" --table "$out/teachers-table.md" \
        --set device=cuda > "$out/teachers-table.log" 2>&1 || status=1
      tail -5 "$out/teachers-table.log"; cat "$out/teachers-table.md" 2>/dev/null ;;
    build)
      cores=$(nproc)
      # shellcheck disable=SC2086  # BUILD_OVERRIDES holds several key=value words
      /usr/bin/env time -f "wall %e s" "$py" -P -m edgepose.cli.main models build --config configs/default-model/build.yaml \
        --data-root "$data" device=cuda threads="$cores" data.synth_workers="$cores" data.profiled_workers="$cores" \
        optim.workers=$(( cores > 2 ? cores - 2 : 1 )) out_dir="$out/build" ${BUILD_OVERRIDES:-} \
        > "$out/build.log" 2>&1 || status=1
      grep -v 'it/s' "$out/build.log" | tail -8 ;;
    kernel)
      run_py -m pytest -p no:cacheprovider -q -rs -m gpu tests/test_jetson_preprocess.py tests/test_trt_runtime.py \
        > "$out/gpu-tests.log" 2>&1 || status=1
      tail -15 "$out/gpu-tests.log"
      img=$data/aflw2000-sample/image00050.jpg
      run_py -m edgepose.cli.main bench gpu-preprocess --json "$out/gpu-preprocess.json" \
        $( [ -f "$img" ] && echo --image "$img" ) > "$out/gpu-preprocess.md" 2>&1 || status=1
      cat "$out/gpu-preprocess.md" ;;
    *) echo "unknown step $step (train, table, build, kernel)" >&2; status=2 ;;
  esac
done
exit $status
