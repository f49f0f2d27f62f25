"""``edgepose eval``: pose metrics of a model on labelled datasets, plus robustness variants.

For every dataset the test set is evaluated as is and in CLERF-style variants: the crop rotated
counter-clockwise by fixed angles (default -30, -15, 15, 30, 90 and 180 deg) and mirrored.  The
images go through the same path as training augmentation (:func:`edgepose.data.augment.crop_sample`
-> :func:`edgepose.preprocess.crop_image`), and the labels through :mod:`edgepose.geometry`
(``rotate_label`` then ``flip_label``), so image and label always agree.  The Euler MAE compares
the predictions with the dataset's own Euler labels (``Pose_Para`` for AFLW2000, which keeps
90 < |yaw| <= 99 after the ±99 filter), carried through each variant by
:func:`edgepose.data.augment.euler_label` (flip: (p, -y, -r); rotation: the decomposition of the
rotated R nearest to the label); decoding the label from R would fold those yaws.

The model is fed with the preprocessing recorded in its own metadata.  Results: a JSON file and
a table (per variant: Euler MAE p/y/r/mean, GE, MAEV, wrapped MAE, two-solution MAE and, with
``aligned=True``, the aligned GE).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import geometry
from .errors import DataError, ModelError
from .metadata import CHECKPOINT_SUFFIXES
from .metrics import METRIC_LABELS, pose_metrics

log = logging.getLogger(__name__)

__all__ = ["Variant", "DEFAULT_ANGLES", "default_variants", "parse_variants", "load_predictor",
           "TorchPredictor", "variant_batch", "variant_euler", "evaluate_reader", "evaluate", "format_table",
           "SUBPIXEL_SHIFTS", "photo_faces", "shifted_boxes", "subpixel_change", "with_detector_boxes"]

DEFAULT_ANGLES = (-30.0, -15.0, 15.0, 30.0, 90.0, 180.0)


@dataclass(frozen=True)
class Variant:
    """One view of the test set: crop rotated CCW by ``angle`` deg, then mirrored if ``flip``."""

    name: str
    angle: float = 0.0
    flip: bool = False


def _angle_name(a: float) -> str:
    return f"rot{a:+g}"


def default_variants(angles: Iterable[float] = DEFAULT_ANGLES, flip: bool = True) -> list[Variant]:
    out = [Variant("original")]
    out += [Variant(_angle_name(a), float(a)) for a in angles if float(a) % 360 != 0]
    if flip:
        out.append(Variant("flip", 0.0, True))
    return out


def parse_variants(text: str | None) -> list[Variant]:
    """``"-30,15,180,flip"`` -> variants (``original`` always first); ``"none"`` -> original only;
    ``"rot30+flip"`` style items combine a rotation and a mirror."""
    if text is None:
        return default_variants()
    out = [Variant("original")]
    if text.strip().lower() in ("", "none", "original"):
        return out
    for item in text.split(","):
        item = item.strip().lower()
        if not item or item == "original":
            continue
        flip = item == "flip" or item.endswith("+flip")
        core = item[:-5] if item.endswith("+flip") else ("" if item == "flip" else item)
        core = core[3:] if core.startswith("rot") else core
        try:
            angle = float(core) if core else 0.0
        except ValueError:
            raise DataError(f"--variants item {item!r}: expected an angle in degrees (e.g. 30, -15), "
                            f"'flip' or 'ANGLE+flip'") from None
        name = (_angle_name(angle) if angle else "") + ("+flip" if flip and angle else ("flip" if flip else ""))
        if name and all(v.name != name for v in out):
            out.append(Variant(name, angle, flip))
    return out


# ---------------------------------------------------------------------------------- models

class TorchPredictor:
    """Fallback when :mod:`edgepose.runtime` is absent: a PoseModel checkpoint in eval mode."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        from .models.pose_model import PoseModel

        self.model = PoseModel.from_checkpoint(path, map_location=device)
        self.meta = self.model.metadata()
        self.device = device

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            R = self.model(torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device))["R"]
        R = R.float().cpu().numpy()
        return {"R": R, "euler": geometry.matrix_to_euler(R)}

    def close(self) -> None:
        self.model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_predictor(path: str | Path, device: str = "cpu"):
    """Any model artifact -> object with ``.meta`` and ``.infer(batch) -> {"R": ...}``.

    Uses :func:`edgepose.runtime.load_backend` (checkpoints, ONNX, TensorRT engines) when the
    runtime package is installed, else rebuilds a checkpoint with ``PoseModel.from_checkpoint``.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    try:
        from .runtime import load_backend
    except ImportError:
        load_backend = None
    if load_backend is not None:
        return load_backend(path, device=device)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelError(f"{path.name}: only .pt checkpoints can be evaluated without edgepose.runtime")
    return TorchPredictor(path, device)


# ---------------------------------------------------------------------------------- data

def variant_batch(samples: Sequence, spec, variant: Variant) -> tuple[np.ndarray, np.ndarray]:
    """Samples -> (network inputs (N, C, S, S), transformed labels (N, 3, 3)) for one variant."""
    from .data.augment import crop_sample
    from .preprocess import normalize

    xs, Rs = [], []
    for s in samples:
        crop, R, _ = crop_sample(s, spec, angle_deg=variant.angle, flip=variant.flip)
        xs.append(normalize(crop, spec))
        Rs.append(R)
    return np.stack(xs).astype(np.float32), np.stack(Rs).astype(np.float64)


def variant_euler(samples: Sequence, R_labels: np.ndarray, variant: Variant) -> np.ndarray:
    """(N, 3) Euler labels (pitch, yaw, roll) of one variant: each sample's own triple carried
    through the variant's rotation/flip; ``R_labels`` are :func:`variant_batch`'s matrices."""
    from .data.augment import euler_label

    return np.stack([euler_label(s, R, variant.angle, variant.flip) for s, R in zip(samples, R_labels)])


def _labelled_batches(reader, batch_size: int):
    """Batches of labelled samples, decoded lazily (a full test set never sits in memory)."""
    batch = []
    for i in range(len(reader)):
        s = reader[i]
        if s.R is None:
            continue
        batch.append(s)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def evaluate_reader(predictor, reader, variants: Sequence[Variant], batch_size: int = 32,
                    aligned: bool = False, progress: bool = True, desc: str = "eval") -> dict[str, Any]:
    """Metrics per variant for one dataset; each image is decoded once for all variants."""
    from tqdm import tqdm

    spec = predictor.meta.preprocess
    preds: dict[str, list] = {v.name: [] for v in variants}
    gts: dict[str, list] = {v.name: [] for v in variants}
    eulers: dict[str, list] = {v.name: [] for v in variants}
    bar = tqdm(total=math.ceil(len(reader) / batch_size), desc=desc, disable=not progress, leave=False)
    for samples in _labelled_batches(reader, batch_size):
        for v in variants:
            x, R_gt = variant_batch(samples, spec, v)
            preds[v.name].append(np.asarray(predictor.infer(x)["R"], np.float64))
            gts[v.name].append(R_gt)
            eulers[v.name].append(variant_euler(samples, R_gt, v))
        bar.update(1)
    bar.close()
    if not preds[variants[0].name]:
        raise DataError("the dataset has no labelled samples (no pose labels found); eval needs labels")
    results: dict[str, Any] = {}
    for v in variants:
        P, G, E = np.concatenate(preds[v.name]), np.concatenate(gts[v.name]), np.concatenate(eulers[v.name])
        ok = np.isfinite(P).all(axis=(1, 2))
        if not ok.any():
            raise ModelError(f"the model produced no finite pose for variant {v.name}; check the model")
        m = pose_metrics(P[ok], G[ok], euler_gt=E[ok], aligned=aligned)
        m["invalid"] = int((~ok).sum())
        results[v.name] = {"angle": v.angle, "flip": v.flip, "metrics": m}
    return results


def evaluate(model_path: str | Path, datasets: dict[str, dict], variants: Sequence[Variant] | None = None,
             batch_size: int = 32, aligned: bool = False, device: str = "cpu", progress: bool = True) -> dict:
    """Evaluate one model on named datasets; returns the JSON-able report."""
    from .data.options import build_eval_reader

    variants = list(variants) if variants is not None else default_variants()
    readers = {name: build_eval_reader(cfg, where=f"dataset {name!r}") for name, cfg in datasets.items()}
    with load_predictor(model_path, device=device) as predictor:
        meta = predictor.meta
        report: dict[str, Any] = {
            "model": str(model_path),
            "model_info": {"name": meta.model, "head": meta.head, "precision": meta.precision,
                           "format": meta.format, "input_size": meta.preprocess.input_size},
            "variants": [asdict(v) for v in variants],
            "datasets": {},
        }
        for name, reader in readers.items():
            res = evaluate_reader(predictor, reader, variants, batch_size, aligned, progress, desc=name)
            report["datasets"][name] = {"config": datasets[name], "results": res}
    return report


# ---------------------------------------------------------------------------------- output

def format_table(report: dict, aligned: bool = False) -> str:
    keys = ["mae_pitch", "mae_yaw", "mae_roll", "mae", "ge", "maev", "wrapped_mae", "two_solution_mae"]
    if aligned:
        keys.append("aligned_ge")
    lines = []
    for ds_name, ds in report["datasets"].items():
        first = next(iter(ds["results"].values()))["metrics"]
        lines.append(f"{ds_name} (n={first['n']}, degrees)")
        head = f"{'variant':<14}" + "".join(f"{METRIC_LABELS[k]:>9}" for k in keys)
        lines.append(head)
        lines.append("-" * len(head))
        for v_name, r in ds["results"].items():
            m = r["metrics"]
            lines.append(f"{v_name:<14}" + "".join(f"{m[k]:>9.2f}" for k in keys))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- the deployment detector's boxes ------------------------------------------------------------------------
def with_detector_boxes(samples: Sequence, detector_model: str | Path | None) -> list:
    """The samples in which the deployment detector (YuNet) finds a face, each with its best box.

    A dataset's own boxes (AFLW2000's come from its landmarks) are tighter and steadier than what a model
    gets at run time, and teachers trained on other crop policies read several degrees worse on them; the
    documented fixture figures (docs/evaluation.md, docs/models.md) crop the box the detector gives, as
    ``edgepose run`` does. Samples without a detection are left out (the caller reports how many)."""
    from dataclasses import replace

    from .runtime import create_detector
    from .runtime.detection import best_box

    det = create_detector("yunet", model_path=detector_model)
    try:
        boxes = [best_box(det.detect(s.image)) for s in samples]
    finally:
        det.close()
    return [replace(s, box=box) for s, box in zip(samples, boxes) if box is not None]


# --- sub-pixel stability -----------------------------------------------------------------------------------
#: px: a detector box's frame-to-frame wobble, in the four directions
SUBPIXEL_SHIFTS = ((0.01, 0.0), (0.0, 0.01), (-0.01, 0.0), (0.0, -0.01))


def photo_faces(folder: str | Path, detector_model: str | Path | None, limit: int = 12) -> list:
    """(photo, best YuNet box) for the first ``limit`` ``*.JPG`` photos of ``folder`` in which a face is found:
    the faces of the sub-pixel stability measurement (``faces-aws``)."""
    import cv2

    from .runtime import create_detector
    from .runtime.detection import best_box

    det = create_detector("yunet", model_path=detector_model)
    out = []
    try:
        for f in sorted(Path(folder).glob("*.JPG"))[:limit]:
            img = cv2.imread(str(f))
            box = best_box(det.detect(img)) if img is not None else None
            if box is not None:
                out.append((img, box))
    finally:
        det.close()
    return out


def shifted_boxes(items: list, dx: float, dy: float) -> list:
    """The same (image, box) pairs with every box moved by (dx, dy) px."""
    return [(im, (x1 + dx, y1 + dy, x2 + dx, y2 + dy)) for im, (x1, y1, x2, y2) in items]


def subpixel_change(predict, items: list) -> np.ndarray:
    """Geodesic change (deg) of ``predict(items) -> (N, 3, 3)`` per face and shift in :data:`SUBPIXEL_SHIFTS`.

    A detector's box wobbles by sub-pixel amounts from frame to frame; an INT8 network that answers such a
    wobble with a degree turns it into jitter on the DMS's yaw signal (the [accuracy] issue bounds the mean at
    0.2 deg)."""
    from .metrics import geodesic_errors

    base = predict(items)
    return np.concatenate([geodesic_errors(predict(shifted_boxes(items, dx, dy)), base)
                           for dx, dy in SUBPIXEL_SHIFTS])
