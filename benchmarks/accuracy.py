"""Accuracy of every benchmark row on a labelled set, with Polygraphy-style deltas.

Each artifact predicts the whole set once (the network inputs come from
:func:`edgepose.evaluation.variant_batch`, i.e. the same crop path as ``edgepose eval``).
Metrics vs ground truth come from :func:`edgepose.metrics.pose_metrics`; against the peer's
FP32 reference (its PyTorch checkpoint, else its FP32 ONNX) the row also gets the mean
geodesic angle between the two predictions and the largest absolute Euler difference, which
is what shows an INT8 / FP16 conversion error independently of label noise.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from edgepose.errors import DataError

from .suite import DatasetSpec, expand_path

__all__ = ["EvalSet", "load_eval_set", "predict", "accuracy_block", "agreement"]

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    name: str
    samples: list
    boxes: str = "dataset"  # where the face boxes come from (DatasetSpec.boxes)
    _inputs: dict = field(default_factory=dict)  # preprocess spec -> (x, R_gt)

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex) of every image and label: reports are comparable only when it matches
        (a rendered set changes with the renderer, a folder with its files). Detector boxes are hashed
        too (another detector file, other crops); the dataset's own boxes are not, which keeps the
        fingerprints of reports made before the ``boxes`` option."""
        import hashlib

        h = hashlib.sha256()
        for smp in self.samples:
            h.update(np.ascontiguousarray(smp.image).tobytes())
            h.update(np.asarray(smp.R, np.float64).tobytes())
            if self.boxes != "dataset":
                h.update(np.asarray(smp.box, np.float64).tobytes())
        return h.hexdigest()[:16]

    def inputs(self, spec):
        key = repr(spec.to_dict())
        if key not in self._inputs:
            from edgepose.evaluation import Variant, variant_batch

            self._inputs[key] = variant_batch(self.samples, spec, Variant("original"))
        return self._inputs[key]


def load_eval_set(ds: DatasetSpec) -> EvalSet:
    """Read a labelled dataset from the suite (DataError with the fix when it is missing)."""
    from edgepose.data.registry import build_reader

    if ds.format == "synth":
        return _synth_set(ds)
    root = expand_path(ds.root)
    if root is None or not root.exists():
        raise DataError(f"accuracy set {ds.name!r}: {root} not found; set EDGEPOSE_TEST_DATA or fix accuracy.root")
    cfg = {"format": ds.format, "root": str(root), **ds.options}
    samples = [s for s in build_reader(cfg) if s.R is not None]
    if ds.max_samples:
        samples = samples[:ds.max_samples]
    if not samples:
        raise DataError(f"accuracy set {ds.name!r} at {root} has no labelled samples")
    if ds.boxes == "detector":
        samples = _detector_boxes(ds, samples)
    return EvalSet(ds.name or ds.format, samples, boxes=ds.boxes)


def _detector_boxes(ds: DatasetSpec, samples: list) -> list:
    """The samples with YuNet's boxes (:func:`edgepose.evaluation.with_detector_boxes`): the crops a model
    gets at run time, and the path of docs/models.md's fixture figures."""
    from edgepose.evaluation import with_detector_boxes

    model = expand_path(ds.detector_model)
    if model is not None and not model.is_file():
        raise DataError(f"accuracy set {ds.name!r}: detector_model {model} not found; "
                        f"run `edgepose models fetch yunet` or fix accuracy.detector_model")
    found = with_detector_boxes(samples, model)
    if not found:
        raise DataError(f"accuracy set {ds.name!r}: the detector found no face in its {len(samples)} images; "
                        f"use boxes: dataset, or another detector_model")
    if len(found) < len(samples):
        log.info("accuracy set %s: the detector found %d of %d faces (the others are left out)",
                 ds.name, len(found), len(samples))
    return found


def _synth_set(ds: DatasetSpec) -> EvalSet:
    """Rendered heads with exact labels (edgepose.synth); ``options`` go to SynthHeadDataset."""
    try:
        from edgepose.synth.dataset import SynthHeadDataset
    except ImportError as exc:
        raise DataError(f"accuracy set {ds.name!r}: the synthetic renderer is unavailable ({exc}); "
                        f"install edgepose[synth]") from None
    opts = dict(ds.options)
    seed = int(opts.pop("seed", 0))
    reader = SynthHeadDataset(int(ds.max_samples or 48), seed=seed, **opts)
    samples = [reader[i] for i in range(len(reader))]
    return EvalSet(ds.name or "synth", [s for s in samples if s.R is not None])


def predict(backend, eval_set: EvalSet, batch: int = 16) -> np.ndarray:
    """(N, 3, 3) float64 predictions of an opened PoseBackend (NaN rows = invalid outputs)."""
    x, _ = eval_set.inputs(backend.spec)
    step = backend.max_batch or batch
    out = [np.asarray(backend.infer(x[i:i + step])["R"], np.float64) for i in range(0, len(x), step)]
    return np.concatenate(out)


def agreement(P: np.ndarray, P_ref: np.ndarray) -> dict[str, float]:
    """Mean geodesic angle (deg) and largest |Euler| difference between two prediction sets."""
    from edgepose import geometry
    from edgepose.metrics import geodesic_errors, wrapped_errors

    ok = np.isfinite(P).all(axis=(1, 2)) & np.isfinite(P_ref).all(axis=(1, 2))
    if not ok.any():
        return {}
    ge = geodesic_errors(P[ok], P_ref[ok])
    de = wrapped_errors(geometry.matrix_to_euler(P[ok]), geometry.matrix_to_euler(P_ref[ok]))
    return {"ref_ge": float(ge.mean()), "ref_max_abs_deg": float(np.max(de))}


def accuracy_block(P: np.ndarray, eval_set: EvalSet, spec, ref: dict | None = None,
                   P_ref: np.ndarray | None = None) -> dict:
    """Metrics of predictions ``P`` vs labels, plus deltas to the reference block / predictions."""
    from edgepose.metrics import pose_metrics

    _, R_gt = eval_set.inputs(spec)
    ok = np.isfinite(P).all(axis=(1, 2))
    out: dict = {"dataset": eval_set.name, "n": int(ok.sum()), "invalid": int((~ok).sum())}
    if not ok.any():
        out["error"] = "no finite predictions"
        return out
    m = pose_metrics(P[ok], R_gt[ok], aligned=False)
    out.update({k: m[k] for k in ("mae_pitch", "mae_yaw", "mae_roll", "mae", "ge")})
    if ref and ref.get("mae") is not None:
        out["delta_mae"] = out["mae"] - ref["mae"]
        out["delta_ge"] = out["ge"] - ref["ge"]
    if P_ref is not None:
        out.update(agreement(P, P_ref))
    return out
