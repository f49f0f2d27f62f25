#!/usr/bin/env bash
# edgepose on NVIDIA Jetson (JetPack 6.1+ / 7.x): apt packages, a venv that sees JetPack's
# TensorRT and python3-gi, edgepose without the desktop torch wheel, and pycuda built
# against /usr/local/cuda.
#
#   jetson/setup_jetson.sh [--dry-run] [--force] [--jetpack 6|7] [--venv DIR] [--src DIR] [--no-apt]
#
#   --dry-run   print every command instead of running it (works on any machine)
#   --force     continue on a machine that does not look like a Jetson (e.g. inside a container)
#   --jetpack N take JetPack major N instead of detecting it
#   --venv DIR  virtual environment (default: $HOME/edgepose-venv)
#   --src DIR   edgepose source tree (default: the repository this script is in)
#   --no-apt    skip apt-get (packages already installed, or no root)
#
# Detection reads $EDGEPOSE_JETSON_ROOT/etc/nv_tegra_release (root "/" by default) and, on a
# real root, `dpkg-query -W nvidia-l4t-core nvidia-jetpack`.
set -euo pipefail

DRY_RUN=0
FORCE=0
APT=1
JETPACK=""
VENV="${HOME:-/root}/edgepose-venv"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${EDGEPOSE_JETSON_ROOT:-/}"

die() { echo "error: $*" >&2; exit 2; }
say() { echo "== $*"; }
run() {
    # print the command (shell-quoted) and run it unless --dry-run
    local q
    q=$(printf '%q ' "$@")
    echo "+ ${q% }"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --force) FORCE=1 ;;
        --no-apt) APT=0 ;;
        --jetpack) shift; JETPACK="${1:-}"; [[ "$JETPACK" =~ ^[0-9]+$ ]] || die "--jetpack needs a number (6 or 7)" ;;
        --venv) shift; VENV="${1:-}"; [ -n "$VENV" ] || die "--venv needs a directory" ;;
        --src) shift; SRC="${1:-}"; [ -n "$SRC" ] || die "--src needs a directory" ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

# --- detect L4T / JetPack ----------------------------------------------------------------
RELEASE_FILE="${ROOT%/}/etc/nv_tegra_release"
L4T=""
if [ -f "$RELEASE_FILE" ]; then
    # "# R36 (release), REVISION: 4.0, GCID: ..., BOARD: generic, EABI: aarch64, DATE: ..."
    line=$(head -n 1 "$RELEASE_FILE")
    major=$(sed -n 's/^# R\([0-9]*\) (release).*/\1/p' <<<"$line")
    rev=$(sed -n 's/.*REVISION: \([0-9.]*\).*/\1/p' <<<"$line")
    [ -n "$major" ] && L4T="$major.${rev:-0}"
fi
if [ "$ROOT" = "/" ] && command -v dpkg-query >/dev/null 2>&1; then
    core=$(dpkg-query -W -f='${Version}' nvidia-l4t-core 2>/dev/null || true)
    [ -z "$L4T" ] && [ -n "$core" ] && L4T="${core%%-*}"
    JP_PKG=$(dpkg-query -W -f='${Version}' nvidia-jetpack 2>/dev/null || true)
    [ -n "$JP_PKG" ] && say "nvidia-jetpack package: $JP_PKG"
fi
if [ -z "$JETPACK" ] && [ -n "$L4T" ]; then
    case "${L4T%%.*}" in
        35) JETPACK=5 ;;
        36) JETPACK=6 ;;
        38|39) JETPACK=7 ;;
        *) JETPACK="" ;;
    esac
fi
say "L4T: ${L4T:-none}  JetPack: ${JETPACK:-unknown}  root: $ROOT"

if [ -z "$L4T" ] && [ "$FORCE" -eq 0 ]; then
    die "this is not a Jetson ($RELEASE_FILE not found). edgepose's Jetson setup needs JetPack 6.1+; on a desktop use scripts/setup.sh. Pass --force (and --jetpack N) to continue anyway, e.g. in a container"
fi
[ -n "$JETPACK" ] || die "cannot tell the JetPack version from L4T '${L4T:-none}'; pass --jetpack 6 or --jetpack 7"
case "$JETPACK" in
    5) die "JetPack 5 (L4T 35) ships TensorRT 8.5 without the named-tensor API; edgepose needs JetPack 6.1+ (TensorRT 10.3)" ;;
    6)
        if [ "$L4T" = "36.3" ] || [ "$L4T" = "36.3.0" ]; then
            die "JetPack 6.0 (L4T 36.3) ships TensorRT 8.6; edgepose needs JetPack 6.1+ (L4T 36.4, TensorRT 10.3)"
        fi
        PY=python3.10
        # JetPack 6 / DeepStream 7.1 Python bindings are built against numpy 1.x
        NUMPY_SPEC="numpy>=1.24,<2"
        TRT_NOTE="TensorRT 10.3 (DLA on AGX Orin / Orin NX)"
        ;;
    7)
        PY=python3.12
        NUMPY_SPEC="numpy>=1.26"
        TRT_NOTE="TensorRT 10.x, or 11.4.1+ from JetPack 7.2.2 (DLA on AGX Orin only with TRT 11)"
        ;;
    *) die "JetPack $JETPACK is not supported (use 6.1+ or 7.x)" ;;
esac
say "plan for JetPack $JETPACK: $PY, $NUMPY_SPEC, $TRT_NOTE"
say "venv: $VENV   source: $SRC"

# --- apt ------------------------------------------------------------------------------------
APT_PKGS=(
    python3-venv python3-dev python3-pip build-essential
    python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
    python3-libnvinfer python3-libnvinfer-dev libnvinfer-bin
    mosquitto-clients
)
if [ "$JETPACK" = "7" ]; then
    APT_PKGS+=(python3.12-venv)
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ "$APT" -eq 1 ]; then
    run $SUDO apt-get update
    run $SUDO apt-get install -y --no-install-recommends "${APT_PKGS[@]}"
else
    say "skipping apt (--no-apt); needed: ${APT_PKGS[*]}"
fi

# --- venv that sees JetPack's tensorrt and gi --------------------------------------------
run "$PY" -m venv --system-site-packages "$VENV"
PIP="$VENV/bin/pip"
run "$PIP" install --upgrade pip wheel setuptools
# edgepose without its dependency list (that would pull the desktop torch wheel); torch on a
# Jetson is optional and comes from NVIDIA's Jetson wheels when wanted.
run "$PIP" install --no-deps -e "$SRC"
run "$PIP" install "$NUMPY_SPEC" "opencv-python-headless>=4.8,<5" "onnx>=1.16" "onnxruntime>=1.18" \
    "pyyaml>=6" "scipy>=1.10" "tqdm>=4.60" "paho-mqtt>=2.0" "onnxconverter-common>=1.14"
# pycuda has no aarch64 wheel: build it against JetPack's CUDA
run env CUDA_ROOT=/usr/local/cuda PATH="/usr/local/cuda/bin:$PATH" "$PIP" install --no-binary pycuda "pycuda>=2024.1"

# --- checks ---------------------------------------------------------------------------------
run "$VENV/bin/python" -c "import tensorrt, gi, pycuda.driver as c; c.init(); print('tensorrt', tensorrt.__version__, '| GPU', c.Device(0).name())"
run "$VENV/bin/edgepose" --version
say "done. Next: $VENV/bin/edgepose engine build model.onnx --precision fp16   (docs/jetson.md)"
