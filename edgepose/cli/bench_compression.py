"""``edgepose-bench compression``: WHENet teacher -> distilled student -> FP32 ONNX -> INT8 (tensorrt, cpu).

    edgepose-bench compression --data ../shared/data --out runs/compression
    edgepose-bench compression --fp32 runs/f3-distill/student.onnx \\
        --qat runs/f3-distill/best.pt --out runs/f3-bench        # skip distillation, add QAT

Uses the shared test data: unlabelled faces from ``videos/``, ``faces-aws/`` and ``in-cabin/``
(detector crops) for distillation (``configs/distill-whenet-cached.yaml``: cached WHENet labels,
exact geometric augmentation, synthetic train-split heads) and calibration, ``aflw2000-sample/``
for accuracy.  Runs ``edgepose quantize`` (its report, JSON + Markdown) and prints whether the
acceptance bounds hold: tensorrt INT8 within 0.5 deg mean MAE of FP32, cpu INT8 at least 2x faster
than FP32 on ORT CPU.  Minutes on 2 cores; not a test.

It drives two commands (distillation, then ``edgepose quantize``), so it lives in the CLI layer.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..errors import UserError

HELP = "distil -> export -> INT8 (tensorrt, cpu) on the shared data, checked against the acceptance bounds"
DESCRIPTION = __doc__

DATA_ENV = "EDGEPOSE_TEST_DATA"
REPO = Path(__file__).resolve().parents[2]


def data_dir(given: str | None, env: dict | None = None) -> Path:
    """--data, else $EDGEPOSE_TEST_DATA; a clear error when neither names an existing folder.

    No default relative to this file: in an installed package that points into site-packages.
    """
    env = os.environ if env is None else env
    text = given or env.get(DATA_ENV)
    if not text:
        raise UserError(f"no test data folder: pass --data /path/to/shared/data or set {DATA_ENV}")
    path = Path(text).expanduser()
    if not path.is_dir():
        source = "--data" if given else DATA_ENV
        raise UserError(f"{source} {path} is not a folder; point it at the shared test data "
                        f"(with videos/, faces-aws/, in-cabin/, aflw2000-sample/, detectors/)")
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--data", default=None,
                   help=f"the shared test data folder (default: ${DATA_ENV}; required without it)")
    p.add_argument("--out", default="runs/compression")
    p.add_argument("--teacher", default="whenet")
    p.add_argument("--student", default="resnet18")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fp32", help="an existing FP32 student ONNX: skip the distillation")
    p.add_argument("--qat", help="checkpoint the FP32 ONNX came from: add the QAT tensorrt model")
    p.add_argument("--qat-steps", type=int, default=200)
    p.add_argument("--method", default="minmax")
    p.add_argument("--exclude", action="append", default=[], help="node kept in float (repeatable)")


def run(a: argparse.Namespace) -> int:
    data, out = data_dir(a.data), Path(a.out)
    det = str(data / "detectors/yunet/yunet_s_dynamic.onnx")
    unlabelled = [str(data / "videos"), str(data / "faces-aws"), str(data / "in-cabin")]

    if a.fp32:
        fp32 = Path(a.fp32)
    else:
        from ..distill.trainer import distill, load_distill_config

        config = REPO / "configs" / "distill-whenet-cached.yaml"
        cfg = load_distill_config(config if config.is_file() else None, [
            f"teacher=[{a.teacher}]", f"student.name={a.student}", f"student.input_size={a.size}",
            f"data.unlabelled=[{', '.join(unlabelled)}]", f"data.detector_model={det}",
            f"optim.epochs={a.epochs}", f"out_dir={out / 'distill'}"])
        res = distill(cfg, progress=False)
        fp32 = Path(res["onnx"])

    from .main import main as cli

    extra = [x for n in a.exclude for x in ("--exclude", n)]
    if a.qat:
        extra += ["--qat", a.qat, "--qat-steps", str(a.qat_steps)]
    rc = cli(["quantize", str(fp32), *[x for u in unlabelled for x in ("--calib", u)], "--detector-model", det,
              "--video-step", "3", "--eval", f"aflw2000:{data / 'aflw2000-sample'}", "--profiles", "tensorrt,cpu",
              "--method", a.method, "-o", str(out), "--runs", str(a.runs), "--threads", str(a.threads), *extra])
    if rc:
        return rc
    rep = json.loads((out / f"{fp32.stem}-quantize-report.json").read_text())
    m = rep["models"]
    d_trt = abs(m["int8-tensorrt"]["delta_vs_fp32"]["mae"])
    speed = m["int8-cpu"]["speedup_vs_fp32"]
    print(f"tensorrt |dMAE| = {d_trt:.3f} deg (bound 0.5): {'PASS' if d_trt <= 0.5 else 'FAIL'}")
    print(f"cpu speed-up = {speed:.2f}x (bound 2x): {'PASS' if speed >= 2 else 'FAIL'}")
    if "int8-tensorrt-qat" in m:
        print(f"tensorrt QAT |dMAE| = {abs(m['int8-tensorrt-qat']['delta_vs_fp32']['mae']):.3f} deg")
    return 0
