"""Write an exported FP32 file with float16 weight storage (:mod:`edgepose.weight_storage`), metadata included."""
from __future__ import annotations

import os

import numpy as np

__all__ = ["write_fp16_storage_copy"]


def write_fp16_storage_copy(src, dst, check_inputs: np.ndarray | None = None) -> dict:
    """Write ``dst``: the FP32 ONNX file ``src`` with float16 weight storage, its metadata (embedded + sidecar)
    saying so. With ``check_inputs`` (preprocessed crops) both files are run and the largest rotation-entry
    and Euler differences are recorded in the metadata and returned."""
    import onnx

    from ..metadata import load_metadata, save_sidecar
    from ..weight_storage import store_weights_fp16
    from .checks import embed_metadata, max_diffs, ort_session, run_onnx

    meta = load_metadata(src)
    model = store_weights_fp16(onnx.load(str(src)))
    info: dict = {"weight_storage": "float16", "bytes_fp32_weights": int(os.path.getsize(src))}
    embed_metadata(model, meta, dst)
    if check_inputs is not None:
        info["parity_vs_fp32_weights"] = max_diffs(run_onnx(ort_session(src, threads=1), check_inputs),
                                                   run_onnx(ort_session(dst, threads=1), check_inputs))
    meta = meta.derive(extra={**meta.extra, **info})
    embed_metadata(onnx.load(str(dst)), meta, dst)
    save_sidecar(dst, meta)
    return info
