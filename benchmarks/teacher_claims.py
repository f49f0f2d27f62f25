"""The claim test sets of the trained-teacher table (docs/results/teachers.md, issue [teachers]).

One evaluation for every row, per set and view, with a bootstrap 95 % interval over faces for every mean:

* **standard** -- ``fixtures``: the AFLW2000 fixtures with YuNet boxes (:func:`edgepose.assets.evaluate.aflw_faces`,
  the path that scored the imported teachers in docs/models.md; Euler MAE and geodesic against the dataset's R);
  ``real-val``: the build's held-out people (``real-val.npz``), geodesic distance from the three-teacher ensemble;
* **rotated / mirrored** -- the same faces rotated in-plane CCW by 30, 90, 180 deg and mirrored; crops and labels
  both go through :func:`edgepose.evaluation.variant_batch` (``crop_sample`` -> ``geometry.rotate_label`` /
  ``flip_label``; tests/test_eval.py checks image and label agree for every view);
* **full range** -- ``synth-full``: synthetic heads of test-split identities, uniform on SO(3) (exact labels,
  upside-down and back of the head included; the build's ``synth-val.npz`` holds only its narrow range); ``profiled-yaw75``: ``profiled-val.npz`` renders of
  held-out people with |yaw| > 75 deg (ensemble label composed with the applied turn).

PCL's claim (frozen-encoder linear probe) is read from the ``pcl`` and ``simclr`` rows: both are linear probes
on a frozen encoder, scored on the same sets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ROT_ANGLES", "ClaimSet", "claim_sets", "evaluate_checkpoint", "bootstrap_mean", "paired_difference"]

ROT_ANGLES = (30.0, 90.0, 180.0)


@dataclass
class ClaimSet:
    name: str
    samples: list  # edgepose.data.Sample with R (labels) and box
    views: tuple[str, ...]  # "original", "rot+30", ..., "flip"
    mae: bool = False  # report the Euler MAE too (the fixtures: the papers' AFLW2000 figure)


def _views(rotated: bool) -> tuple[str, ...]:
    if not rotated:
        return ("original",)
    return ("original",) + tuple(f"rot{a:+g}" for a in ROT_ANGLES) + ("flip",)


def _variant(view: str):
    from edgepose.evaluation import Variant

    if view == "original":
        return Variant("original")
    if view == "flip":
        return Variant("flip", 0.0, True)
    return Variant(view, float(view[3:]))


def synth_full(cache_dir: Path, n: int) -> list:
    """``n`` synthetic heads of TEST-split identities (never trained on: the build trains on the train split),
    uniform on SO(3), exact labels; rendered once into ``cache_dir/synth-full-test.npz`` by the build's own
    renderer (:func:`edgepose.assets.build_data.synth_set`, which refuses a cache of other settings)."""
    from edgepose.assets.build_data import synth_set
    from edgepose.data.sample import Sample

    cache_dir.mkdir(parents=True, exist_ok=True)
    d = synth_set(n, 7, "test", "full", 200, 128, 1.0, cache_dir / "synth-full-test.npz")
    return [Sample(image=d["images"][i], R=d["R"][i].astype(np.float64), box=tuple(float(v) for v in d["boxes"][i]),
                   source=f"synth-test:{i}") for i in range(len(d["R"]))]


def claim_sets(build_dir: str | Path, data_root: str | Path | None, detector_model: str | Path | None = None,
               cache_dir: str | Path = "runs/teachers-real", synth_n: int = 200,
               real_val_n: int | None = None) -> list[ClaimSet]:
    """The four sets; the fixtures only when ``data_root/aflw2000-sample`` exists. ``detector_model``: YuNet's
    ONNX file (default ``data_root/detectors/yunet/yunet_s_640_640.onnx``, the file the build detects with)."""
    from edgepose.data.npz import NpzFacesReader
    from edgepose.data.sample import Sample

    build_dir, cache_dir = Path(build_dir), Path(cache_dir)
    sets = []
    if data_root is not None and (Path(data_root) / "aflw2000-sample").is_dir():
        from edgepose.assets.evaluate import aflw_faces

        det = Path(detector_model) if detector_model else Path(data_root) / "detectors" / "yunet" / "yunet_s_640_640.onnx"
        items, Rs = aflw_faces(Path(data_root), det)
        sets.append(ClaimSet("fixtures", [Sample(image=im, R=R, box=b, source=f"aflw2000:{i}")
                                          for i, ((im, b), R) in enumerate(zip(items, Rs))], _views(True), mae=True))
    rv = NpzFacesReader(str(build_dir), ["real-val"], n=real_val_n)
    sets.append(ClaimSet("real-val", [rv[i] for i in range(len(rv))], _views(True)))
    sets.append(ClaimSet("synth-full", synth_full(cache_dir, synth_n), _views(False)))
    pv = NpzFacesReader(str(build_dir), ["profiled-val"], min_abs_yaw=75.0)
    sets.append(ClaimSet("profiled-yaw75", [pv[i] for i in range(len(pv))], _views(False)))
    return sets


def bootstrap_mean(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of ``x`` with a percentile bootstrap 95 % interval over its items."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi), "n": int(len(x))}


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of ``a - b`` over the same faces (a row minus another), bootstrap 95 % interval over faces."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired difference needs the same faces, got {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, n_boot, seed)


def _predict(predictor, samples: list, view: str, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    from edgepose.evaluation import variant_batch

    spec, v = predictor.meta.preprocess, _variant(view)
    P, G = [], []
    for i in range(0, len(samples), batch):
        x, R = variant_batch(samples[i:i + batch], spec, v)
        P.append(np.asarray(predictor.infer(x)["R"], np.float64))
        G.append(R)
    return np.concatenate(P), np.concatenate(G)


class ModelPredictor:
    """A PoseModel in memory (an imported teacher member) with the predictor interface: ``meta.preprocess``
    (the model's own crop policy and input) and ``infer(batch) -> {"R"}``."""

    def __init__(self, model):
        self.model = model.eval()
        self.meta = type("Meta", (), {"preprocess": model.preprocess})()

    def infer(self, x: np.ndarray) -> dict:
        import torch

        with torch.inference_mode():
            return {"R": self.model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))["R"].float().numpy()}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def evaluate_checkpoint(ckpt, sets: list[ClaimSet]) -> dict:
    """``{set: {view: {"ge": bootstrap, "mae"?: bootstrap, "errors": per-face geodesic}}}`` plus the pooled
    rotated views (``rotated``: per face the mean of its 30/90/180 deg views). ``ckpt``: a checkpoint path or a
    predictor (:class:`ModelPredictor`)."""
    from edgepose.evaluation import TorchPredictor
    from edgepose.metrics import euler_abs_errors, geodesic_errors

    out: dict = {}
    with (TorchPredictor(Path(ckpt)) if isinstance(ckpt, (str, Path)) else ckpt) as pred:
        for s in sets:
            res: dict = {}
            for view in s.views:
                P, G = _predict(pred, s.samples, view)
                ge = geodesic_errors(P, G)
                res[view] = {"ge": bootstrap_mean(ge), "errors": [round(float(e), 3) for e in ge]}
                if s.mae:
                    res[view]["mae"] = bootstrap_mean(euler_abs_errors(P, G).mean(1))
            rot = [v for v in s.views if v.startswith("rot")]
            if rot:
                # per face, the mean over its rotated views: the bootstrap then resamples faces, not views
                per_face = np.mean([res[v]["errors"] for v in rot], axis=0)
                res["rotated"] = {"ge": bootstrap_mean(per_face), "errors": [round(float(e), 3) for e in per_face]}
            out[s.name] = res
    return out
