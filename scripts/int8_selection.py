"""Choose INT8 quantization settings on *training* faces, before a decision set is looked at (v22 / v23 rules).

    python scripts/int8_selection.py runs/default-model-v18 runs/v23-selection \\
        --alphas off,0,0.5,1 --percentiles 99.999,99.99 --guard 0.05

For each (equalization strength, calibration percentile) it quantizes the build's exact-weight FP32 file in both
profiles from the build's own 256 calibration crops (``edgepose.assets.build.calibration_crops``), then
measures on 256 training faces of the build's ``real.npz`` (``default_rng(11)``): the 0.01 px shift
(``edgepose.evaluation.subpixel_change``, mean over faces and shifts) and the mean geodesic distance from FP32. The
choice (:func:`choose`): the lowest shift averaged over both profiles, among the settings whose files stay within
``--guard`` deg of plain quantization ("off") at the first percentile (each profile); ties go to the larger
percentile, then the smaller strength; "off" itself is the baseline, never the choice. Writes ``OUT/selection.json`` and prints the choice. docs/models.md ("v22 and v23").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PROFILES = ("cpu", "tensorrt")


def _alpha(text: str) -> float | None:
    return None if text.strip().lower() == "off" else float(text)


def key(alpha: float | None, percentile: float) -> str:
    return f"alpha={alpha} percentile={percentile}"


def choose(results: dict, alphas: list, percentiles: list, guard: float | None) -> tuple:
    """(alpha, percentile) by the rule in the module doc; ``results[key] = {profile: {shift, from_fp32}}``."""
    base = results[key(None, percentiles[0])] if guard is not None else None
    best = None
    # order = preference among ties: larger percentile first, then smaller alpha (None = off counts as smallest)
    for pct in sorted(percentiles, reverse=True):
        for alpha in sorted(a for a in alphas if a is not None):  # "off" is the baseline, never the choice
            row = results[key(alpha, pct)]
            if base is not None and any(row[p]["from_fp32"] > base[p]["from_fp32"] + guard for p in PROFILES):
                continue
            score = float(np.mean([row[p]["shift"] for p in PROFILES]))
            if best is None or score < best[0]:
                best = (score, alpha, pct)
    if best is None:
        raise SystemExit("no setting passes the guard")
    return best[1], best[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", type=Path, help="a default-model build's out_dir (last export, real.npz)")
    ap.add_argument("out", type=Path, help="folder for the INT8 files and selection.json")
    ap.add_argument("--alphas", default="off,0,0.5,1", help="equalization strengths, 'off' for none")
    ap.add_argument("--percentiles", default="99.999", help="calibration percentiles; the first is the guard's base")
    ap.add_argument("--guard", type=float, help="max extra mean geodesic distance from FP32 (deg) vs plain quantization")
    ap.add_argument("--calib-seed", type=int, default=1, help="the build's seed (its calibration draw)")
    args = ap.parse_args(argv)

    from edgepose.assets.build import calibration_crops
    from edgepose.assets.evaluate import OnnxRow
    from edgepose.evaluation import subpixel_change
    from edgepose.metadata import load_metadata
    from edgepose.metrics import geodesic_errors
    from edgepose.quantize.ptq import quantize_onnx

    alphas = [_alpha(a) for a in args.alphas.split(",")]
    percentiles = [float(p) for p in args.percentiles.split(",")]
    if args.guard is not None and None not in alphas:
        raise SystemExit("--guard compares with plain quantization: include 'off' in --alphas")
    fp32 = args.build / "edgepose-default-fp32.fp32-weights.onnx"
    z = np.load(args.build / "real.npz")
    images, boxes = z["images"], z["boxes"]  # read once: an npz member is read again on every access
    spec = load_metadata(fp32).preprocess
    crops = calibration_crops({"images": images, "boxes": boxes}, spec, 256, args.calib_seed)
    sel = np.sort(np.random.default_rng(11).choice(len(images), 256, replace=False))
    faces = [(images[i], tuple(float(v) for v in boxes[i])) for i in sel]
    ref = OnnxRow("fp32", fp32).predict(faces)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for pct in percentiles:
        for alpha in alphas:
            row = {}
            for prof in PROFILES:
                f = args.out / f"{prof}-{alpha}-{pct}.onnx"
                quantize_onnx(fp32, f, crops, prof, method="percentile", percentile=pct,
                              reduce_range="off" if prof == "cpu" else None, equalize=alpha,
                              command="scripts/int8_selection.py")
                r = OnnxRow(prof, f)
                row[prof] = {"shift": float(subpixel_change(r.predict, faces).mean()),
                             "from_fp32": float(geodesic_errors(r.predict(faces), ref).mean())}
            results[key(alpha, pct)] = row
            print(key(alpha, pct), json.dumps(row), flush=True)
    alpha, pct = choose(results, alphas, percentiles, args.guard)
    doc = {"command": " ".join(sys.argv), "results": results, "choice": {"alpha": alpha, "percentile": pct}}
    (args.out / "selection.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"choice: quant_equalize={alpha} quant_percentile={pct}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
