"""Post-export checks: onnxruntime parity against PyTorch, dynamic-batch runs, metadata embedding."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..metadata import ArtifactMetadata, atomic_write_bytes

__all__ = ["ort_session", "run_onnx", "max_diffs", "embed_metadata", "read_embedded_metadata"]


def ort_session(path: str | os.PathLike, threads: int | None = None, disabled_optimizers: tuple | list = ()):
    """ORT CPU session for checks. ``threads`` None: $OMP_NUM_THREADS (0 = ORT's default);
    ``disabled_optimizers``: graph transformers to skip by name (e.g. to run a Q/DQ file unfused)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Parity is checked against the graph as written; ORT's fusions are what deployment runs too,
    # but keep the default level so the check sees exactly what a runtime sees.
    opts.intra_op_num_threads = int(threads if threads is not None else os.environ.get("OMP_NUM_THREADS", "0") or 0)
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(disabled_optimizers))


def run_onnx(session, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    outs = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})
    return dict(zip(names, outs))


def _wrapped(a: np.ndarray) -> np.ndarray:
    return (a + 180.0) % 360.0 - 180.0


def max_diffs(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Max |ref - got| for ``rotation`` and the wrapped max difference (deg) for ``euler``; also for the
    ROI heads' ``presence`` (probability) and ``box`` (crop units) when both sides have them."""
    diffs = {
        "rotation": float(np.abs(ref["rotation"].astype(np.float64) - got["rotation"]).max()),
        "euler_deg": float(np.abs(_wrapped(ref["euler"].astype(np.float64) - got["euler"])).max()),
    }
    for name in ("presence", "box"):
        if name in ref and name in got:
            diffs[name] = float(np.abs(ref[name].astype(np.float64) - got[name]).max())
    return diffs


def embed_metadata(onnx_bytes_or_model, meta: ArtifactMetadata, out_path: str | os.PathLike) -> None:
    """Write the model with ``metadata_props["edgepose"] = meta`` (sha256 None inside), atomically."""
    import onnx

    model = onnx_bytes_or_model if isinstance(onnx_bytes_or_model, onnx.ModelProto) else onnx.load(str(onnx_bytes_or_model))
    d = meta.to_dict()
    d["sha256"] = None  # a file cannot contain its own hash; the sidecar carries it
    for i in reversed(range(len(model.metadata_props))):
        if model.metadata_props[i].key == "edgepose":
            del model.metadata_props[i]
    prop = model.metadata_props.add()
    prop.key, prop.value = "edgepose", json.dumps(d, sort_keys=True)
    atomic_write_bytes(out_path, model.SerializeToString())


def read_embedded_metadata(path: str | os.PathLike) -> ArtifactMetadata | None:
    import onnx

    model = onnx.load(str(Path(path)), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "edgepose":
            return ArtifactMetadata.from_dict(json.loads(prop.value))
    return None
