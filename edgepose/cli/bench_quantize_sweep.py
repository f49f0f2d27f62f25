"""``edgepose-bench quantize-sweep``: INT8 variants of one FP32 model scored against it (docs/results/compression.md).

    edgepose-bench quantize-sweep runs/f3-distill/student.onnx --calib ../shared/data/videos \\
        --calib ../shared/data/faces-aws --calib ../shared/data/in-cabin \\
        --detector-model ../shared/data/detectors/yunet/yunet_s_dynamic.onnx \\
        --eval aflw2000:../shared/data/aflw2000-sample --synth-test 300 --out runs/f3-sweep
    edgepose-bench quantize-sweep MODEL --calib X --list-groups    # node names for `edgepose quantize --exclude`
    edgepose-bench quantize-sweep MODEL --calib X --shift-faces ../shared/data/faces-aws --rank-by shift \
        --method percentile --profile cpu     # which layer groups make the INT8 answer jump under a 0.01 px shift

Stages (``--stages``): ``methods`` (minmax / entropy / percentile, fewer crops), ``sensitivity``
(one layer group quantized at a time), ``exclude`` (the most sensitive groups kept in float) and ``equalize``
(activation equalization at strengths 0 / 0.5 / 1; not in the default list).
Writes ``sweep.json`` and ``sweep.md`` into ``--out``; details in :mod:`edgepose.quantize.sweep`.
Minutes on 2 cores; not a test.
"""
from __future__ import annotations

import argparse

HELP = "INT8 variant sweep: calibration methods, per-layer-group sensitivity, groups kept in float"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("model", help="FP32 ONNX from `edgepose export` / `edgepose distill`")
    p.add_argument("--calib", action="append", required=True, help="calibration images / videos / folders")
    p.add_argument("--detector-model")
    p.add_argument("--video-step", type=int, default=3)
    p.add_argument("--max-crops", type=int, default=512)
    p.add_argument("--eval", dest="eval_set", help="labelled set FORMAT:PATH, e.g. aflw2000:../shared/data/aflw2000-sample")
    p.add_argument("--synth-test", type=int, default=300, help="synthetic test heads (0 = none)")
    p.add_argument("--synth-range", default="wide", help="pose range of the synthetic test set")
    p.add_argument("--profile", default="tensorrt")
    p.add_argument("--stages", default="methods,sensitivity,exclude",
                   help="comma list of methods, sensitivity, exclude, equalize (default: the first three)")
    p.add_argument("--method", default="minmax", help="method of the sensitivity / exclude stages")
    p.add_argument("--depth", type=int, default=4, help="module-path depth of a layer group")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--list-groups", action="store_true", help="print the layer groups and exit")
    p.add_argument("--shift-faces", help="photo folder (e.g. ../shared/data/faces-aws): add the 0.01 px box-shift "
                   "stability column (YuNet boxes from --detector-model)")
    p.add_argument("--rank-by", choices=("drift", "shift"), default="drift",
                   help="what the sensitivity stage ranks layer groups by for the exclude stage")
    p.add_argument("--out", default="runs/quantize-sweep")


def run(a: argparse.Namespace) -> int:
    from ..data.faces import DetectorSettings
    from ..quantize.sweep import run_sweep
    from .main import invoked_command

    settings = DetectorSettings(model_path=a.detector_model, video_step=a.video_step)
    return run_sweep(a.model, a.calib, settings, eval_set=a.eval_set, synth_test=a.synth_test,
                     synth_range=a.synth_range, profile=a.profile, stages=a.stages, method=a.method, depth=a.depth,
                     threads=a.threads, list_groups=a.list_groups, max_crops=a.max_crops, out=a.out,
                     command=invoked_command(a) or "edgepose-bench quantize-sweep", shift_faces=a.shift_faces,
                     rank_by=a.rank_by)
