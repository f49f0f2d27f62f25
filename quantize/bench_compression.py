"""The full compression measurement: WHENet teacher -> distilled student -> FP32 ONNX -> INT8 (tensorrt, cpu).

    python -m edgepose.quantize.bench_compression --data ../shared/data --out runs/compression

Uses the shared test data: unlabelled faces from ``videos/`` and ``faces-aws/`` (detector crops)
for distillation and calibration, ``aflw2000-sample/`` for accuracy.  Writes the quantize report
(JSON + Markdown) and prints whether the acceptance bounds hold: tensorrt INT8 within 0.5 deg mean
MAE of FP32, cpu INT8 at least 2x faster than FP32 on ORT CPU.  Minutes on 2 cores; not a test.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    p.add_argument("--out", default="runs/compression")
    p.add_argument("--teacher", default="whenet")
    p.add_argument("--student", default="resnet18")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    data, out = Path(a.data), Path(a.out)
    det = str(data / "detectors/yunet/yunet_s_dynamic.onnx")
    unlabelled = [str(data / "videos"), str(data / "faces-aws")]

    from edgepose.distill.trainer import distill, load_distill_config

    cfg = load_distill_config(None, [
        f"teacher=[{a.teacher}]", f"student.name={a.student}", f"student.input_size={a.size}",
        f"data.unlabelled=[{', '.join(unlabelled)}]", f"data.detector_model={det}", "data.video_step=5",
        f"optim.epochs={a.epochs}", "optim.batch_size=16", f"out_dir={out / 'distill'}"])
    res = distill(cfg, progress=False)
    fp32 = Path(res["onnx"])

    from edgepose.cli.main import main as cli

    rc = cli(["quantize", str(fp32), "--calib", unlabelled[0], "--calib", unlabelled[1], "--detector-model", det,
              "--eval", f"aflw2000:{data / 'aflw2000-sample'}", "--profiles", "tensorrt,cpu", "-o", str(out),
              "--runs", str(a.runs), "--threads", str(a.threads)])
    if rc:
        return rc
    rep = json.loads((out / f"{fp32.stem}-quantize-report.json").read_text())
    m = rep["models"]
    d_trt = abs(m["int8-tensorrt"]["delta_vs_fp32"]["mae"])
    speed = m["int8-cpu"]["speedup_vs_fp32"]
    print(f"tensorrt |dMAE| = {d_trt:.3f} deg (bound 0.5): {'PASS' if d_trt <= 0.5 else 'FAIL'}")
    print(f"cpu speed-up = {speed:.2f}x (bound 2x): {'PASS' if speed >= 2 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
