"""Measure the shipped default models and the WHENet teacher on the same face crops (docs/models.md).

    python -m edgepose.assets.evaluate --data-root ../shared/data --out docs/results/default-model.json

* **AFLW2000 fixtures** (``aflw2000-sample``, evaluation only): faces found by the deployment
  detector (YuNet, ``--detector-model``), each model cropping the same box with its own policy.
* **Synthetic test sets** (``edgepose.synth``, test-split identities never seen in training, exact
  labels): ``wide`` poses (pitch +-60, yaw +-99, roll +-45) and ``full`` (uniform on SO(3)), face
  boxes from the renderer.
* **Agreement with the teacher**: geodesic angle between each model's and WHENet's rotation on the
  same crops.

Metrics: Euler MAE (pitch, yaw, roll) and geodesic error (deg), from :mod:`edgepose.metrics`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgepose.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def aflw_faces(root: Path, detector_model: Path | None) -> tuple[list, np.ndarray]:
    """(frames + detector boxes, ground-truth R) of the AFLW2000 fixtures."""
    from edgepose.data.registry import build_reader
    from edgepose.runtime import create_detector

    reader = build_reader({"format": "aflw2000", "root": str(root / "aflw2000-sample")})
    det = create_detector("yunet", model_path=detector_model)
    items, Rs = [], []
    try:
        for s in reader:
            dets = sorted(det.detect(s.image), key=lambda d: -d.score)
            if not dets:
                continue
            items.append((s.image, tuple(float(v) for v in dets[0].box[:4])))
            Rs.append(s.R)
    finally:
        det.close()
    return items, np.asarray(Rs, np.float64)


def synth_faces(n: int, pose_range: str, seed: int) -> tuple[list, np.ndarray]:
    from edgepose.synth import SynthHeadDataset

    ds = SynthHeadDataset(n, seed=seed, split="test", n_identities=200, pose_range=pose_range, size=160)
    items, Rs = [], []
    for i in range(n):
        s = ds[i]
        items.append((s.image, tuple(float(v) for v in s.box)))
        Rs.append(s.R)
    return items, np.asarray(Rs, np.float64)


def predictors(models: dict[str, Path], teacher: str | None):
    """name -> f(items) -> (N,3,3) rotations; every model crops with its own metadata spec."""
    from edgepose.preprocess import preprocess
    from edgepose.runtime import load_backend

    out = {}
    for name, path in models.items():
        backend = load_backend(path, intra_op_threads=1)

        def f(items, b=backend):
            return np.concatenate([b.infer(np.stack([preprocess(im, box, b.spec) for im, box in items[i:i + 32]]))["R"]
                                   for i in range(0, len(items), 32)]).astype(np.float64)
        out[name] = f
    if teacher:
        import torch

        from edgepose.distill.teacher import load_teacher

        t = load_teacher([teacher])
        spec = t.specs[0]

        def ft(items):
            with torch.no_grad():
                return np.concatenate([t([torch.from_numpy(np.stack([preprocess(im, box, spec)
                                                                      for im, box in items[i:i + 32]]))])["R"].numpy()
                                       for i in range(0, len(items), 32)]).astype(np.float64)
        out["whenet (teacher)"] = ft
    return out


def score(P: np.ndarray, G: np.ndarray) -> dict:
    from edgepose.metrics import euler_abs_errors, geodesic_errors

    ae, ge = euler_abs_errors(P, G), geodesic_errors(P, G)
    return {"n": int(len(G)), "mae": float(ae.mean()), "pitch": float(ae[:, 0].mean()), "yaw": float(ae[:, 1].mean()),
            "roll": float(ae[:, 2].mean()), "geodesic": float(ge.mean()), "geodesic_median": float(np.median(ge))}


def main(argv=None) -> int:
    from edgepose.defaults import PROFILES, default_pose_model
    from edgepose.metadata import atomic_write_text
    from edgepose.metrics import geodesic_errors

    ap = argparse.ArgumentParser(prog="python -m edgepose.assets.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", help="shared data folder (default: $EDGEPOSE_TEST_DATA or ../shared/data)")
    ap.add_argument("--detector-model", default="detectors/yunet/yunet_s_640_640.onnx",
                    help="YuNet file (relative to --data-root or absolute); = `edgepose models fetch yunet`")
    ap.add_argument("--models-dir", default=None, help="evaluate the three files of this folder instead of the shipped ones")
    ap.add_argument("--teacher", default="whenet", help="teacher spec for the comparison ('' to skip)")
    ap.add_argument("--synth-n", type=int, default=300, help="images per synthetic test set (default 300)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None, help="write the JSON report here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    root = Path(args.data_root or os.environ.get("EDGEPOSE_TEST_DATA") or REPO.parent / "shared" / "data")
    try:
        if args.models_dir:
            models = {k: Path(args.models_dir) / v for k, v in PROFILES.items()}
        else:
            models = {k: default_pose_model(k) for k in PROFILES}
        det = Path(args.detector_model)
        det = det if det.is_absolute() else root / det
        sets = {}
        if (root / "aflw2000-sample").is_dir():
            sets["aflw2000-sample (YuNet boxes)"] = aflw_faces(root, det if det.is_file() else None)
        else:
            print(f"note: {root / 'aflw2000-sample'} not found; AFLW2000 rows skipped", file=sys.stderr)
        for pr in ("wide", "full"):
            sets[f"synthetic test {pr}"] = synth_faces(args.synth_n, pr, args.seed)
        preds = predictors(models, args.teacher or None)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report: dict = {"command": "python -m edgepose.assets.evaluate " + " ".join(sys.argv[1:]), "sets": {}}
    for sname, (items, G) in sets.items():
        P = {m: f(items) for m, f in preds.items()}
        rows = {m: score(p, G) for m, p in P.items()}
        tkey = "whenet (teacher)"
        if tkey in P:
            for m in rows:
                if m != tkey:
                    rows[m]["vs_teacher_geodesic"] = float(geodesic_errors(P[m], P[tkey]).mean())
        report["sets"][sname] = rows
    report["seconds"] = time.perf_counter() - t0
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = []
    for sname, rows in report["sets"].items():
        n = next(iter(rows.values()))["n"]
        lines += [f"\n**{sname}** (n = {n})\n", "| model | MAE | pitch | yaw | roll | geodesic (mean / median) | vs teacher |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for m, r in rows.items():
            vt = f"{r['vs_teacher_geodesic']:.2f}" if "vs_teacher_geodesic" in r else "-"
            lines.append(f"| {m} | {r['mae']:.2f} | {r['pitch']:.2f} | {r['yaw']:.2f} | {r['roll']:.2f} | "
                         f"{r['geodesic']:.2f} / {r['geodesic_median']:.2f} | {vt} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
