"""INT8 post-training quantization of an edgepose ONNX file with ``onnxruntime.quantization``.

``quantize_onnx(fp32.onnx, out.onnx, crops, profile="tensorrt"|"cpu", method="minmax")``:

1. ``quant_pre_process`` (shape inference + graph optimisation: BN folding) into a temp file, see
   :func:`pre_process` for why ORT's *symbolic* shape inference is skipped;
2. optionally (``equalize=alpha``) activation equalization across ReLU (:mod:`.equalize`): every quantized
   ReLU output gets the tensor's full range in each channel, the FP32 function unchanged;
3. the head (the pooled features and everything after them, :func:`.graph.head_node_names`) is excluded,
   plus any ``exclude`` nodes (e.g. the stem conv found sensitive by ``quantize/sweep.py``) and, for
   ``tensorrt``, MatMuls with batched constant weights (:func:`.graph.batched_weight_matmuls`);
4. ``quantize_static`` in Q/DQ format with the profile's types and options (:mod:`.profiles`) and
   the chosen calibration (minmax / entropy / percentile); ``cpu`` adds ``reduce_range`` (7-bit
   weights) on x86 CPUs without VNNI, see :func:`.profiles.resolve_reduce_range`;
5. ``tensorrt`` results must pass the Q/DQ lint (:mod:`.lint`) or nothing is written;
6. metadata: ``meta.derive(precision="int8-tensorrt"|"int8-cpu")`` with the calibration summary,
   embedded + sidecar; the calibration manifest goes to ``<out>.calib.json``.
"""
from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepose.errors import ModelError, UserError
from edgepose.metadata import ArtifactMetadata, file_sha256, load_metadata, save_sidecar

from .calibration import CropCalibrationReader, calibrate_outside, float_head_tensors, write_manifest
from .graph import batched_weight_matmuls, head_node_names, opset_of
from .lint import check_tensorrt_qdq
from .kernel_check import int8_drift, warn_drift
from .profiles import CALIBRATION_METHODS, QuantProfile, get_profile, resolve_reduce_range

__all__ = ["QuantResult", "quantize_onnx", "pre_process", "MIN_OPSET", "MAX_OPSET"]

log = logging.getLogger(__name__)

MIN_OPSET, MAX_OPSET = 13, 20  # QDQ per-axis needs 13; ORT static INT8 rejects >= 21 (docs/quantization.md)


@dataclass
class QuantResult:
    path: Path
    profile: str
    method: str
    num_calibration: int
    excluded_nodes: list[str]
    num_q: int
    num_dq: int
    seconds: float
    metadata: ArtifactMetadata = field(repr=False)
    manifest_path: Path | None = None
    reduce_range: bool = False
    #: rotation drift from FP32 on calibration crops, fused vs Q/DQ execution (kernel_check.int8_drift)
    drift: dict | None = None
    #: activation equalization (equalize.EqualizeResult.as_dict()), None when off
    equalization: dict | None = None

    def summary(self) -> str:
        gap = "" if self.drift is None else (f"{self.drift['fused_vs_fp32_deg']:.2f} deg from FP32 on ORT CPU "
                                             f"(Q/DQ arithmetic {self.drift['qdq_vs_fp32_deg']:.2f}), ")
        return (f"wrote {self.path} ({self.profile}, {self.method} calibration on {self.num_calibration} crops, "
                f"{self.num_q} Q / {self.num_dq} DQ, {len(self.excluded_nodes)} head nodes kept in float, "
                f"{'7-bit weights (reduce_range), ' if self.reduce_range else ''}"
                f"{'' if self.equalization is None else 'activations equalized (alpha %g), ' % self.equalization['alpha']}"
                f"{gap}{self.seconds:.1f} s)")


def _normalise_method(name: str) -> str:
    """Lower-cased, stripped method name (callers compare it to "entropy"/"percentile" afterwards)."""
    name = str(name).strip().lower()
    if name not in CALIBRATION_METHODS:
        raise UserError(f"unknown calibration method {name!r}; choose from {', '.join(CALIBRATION_METHODS)}")
    return name


def _method(name: str):
    """ORT's CalibrationMethod for a name already passed through :func:`_normalise_method`."""
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


def _check_input(fp32: Path) -> tuple[ArtifactMetadata, object]:
    import onnx

    if not fp32.is_file():
        raise ModelError(f"ONNX model not found: {fp32}; export one with `edgepose export ckpt.pt -o model.onnx`")
    try:
        model = onnx.load(str(fp32))
    except Exception as exc:  # noqa: BLE001 - protobuf errors
        raise ModelError(f"{fp32} is not a readable ONNX file ({exc})") from None
    meta = load_metadata(fp32)
    if meta.precision != "fp32":
        raise ModelError(f"{fp32} is already {meta.precision}; quantize the FP32 export, not a quantized model")
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise ModelError(f"{fp32} already contains Q/DQ nodes; quantize the FP32 export")
    opset = opset_of(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"{fp32} has opset {opset}; INT8 Q/DQ needs opset {MIN_OPSET}..{MAX_OPSET} "
                         f"(re-export with `edgepose export --opset 18`)")
    return meta, model


def pre_process(src: Path, dst: Path) -> str:
    """ORT's ``quant_pre_process`` into ``dst``; returns which variant ran ("onnx-shapes" or "none").

    Symbolic shape inference is skipped on purpose: onnxruntime's ``SymbolicShapeInference`` has
    no handler for ``ReduceL2`` with its axes as an input (opset >= 18, the Gram-Schmidt norm of the
    6D head), leaves that output without a shape, and then crashes on the following ``Div``
    (``TypeError: object of type 'NoneType' has no len()``).  Symbolic inference only matters for
    models with symbolic inner dimensions (transformers); ONNX's own shape inference types every
    tensor of these CNNs (only the batch axis is symbolic) and the ORT graph optimisation still runs.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return "onnx-shapes"
    except Exception as exc:  # noqa: BLE001 - fall back to the raw graph; BN is already folded by export
        log.warning("quant_pre_process failed (%s: %s); quantizing the exported graph as is", type(exc).__name__, exc)
        return "none"


def quantize_onnx(fp32_path, out_path, crops: np.ndarray, profile: str | QuantProfile = "tensorrt",
                  method: str = "minmax", percentile: float = 99.999, manifest: dict | None = None,
                  batch_size: int = 1, command: str | None = None, exclude: list[str] | tuple = (),
                  only: list[str] | None = None, reduce_range: str | bool | None = "auto",
                  equalize: float | None = None) -> QuantResult:
    """Quantize ``fp32_path`` into ``out_path`` (see module docstring); returns a :class:`QuantResult`.

    ``exclude``: extra node names kept in float (after pre-processing; see ``quantize/sweep.py``);
    ``only``: quantize just these nodes (the sensitivity sweep), everything else stays float;
    ``reduce_range``: auto | on | off (or a bool), ``cpu`` profile only: 7-bit weights against U8S8
    saturation on x86 CPUs without VNNI; ``auto`` detects this machine's CPU;
    ``equalize``: None (off) or the strength ``alpha`` in [0, 1] of activation equalization before dense convs
    (:mod:`.equalize`; the tensors before depthwise convs and the float head are always fully equalized when on).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static

    t0 = time.perf_counter()
    fp32, out = Path(fp32_path), Path(out_path)
    prof = profile if isinstance(profile, QuantProfile) else get_profile(profile)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"output {out} must end in .onnx")
    if out.resolve() == fp32.resolve():
        raise UserError("the INT8 output would overwrite the FP32 input; choose another output path")
    meta, _ = _check_input(fp32)
    method = _normalise_method(method)  # before the "entropy" / "percentile" checks below
    calib_method = _method(method)
    use_reduce_range, rr_reason = resolve_reduce_range(prof, reduce_range)
    if use_reduce_range and "auto" in rr_reason:
        log.warning("%s: reduce_range %s; the file is meant for a CPU like this one -- pass reduce_range "
                    "on/off (--reduce-range) when quantizing for another machine", out.name, rr_reason)
    spec = meta.preprocess
    crops = np.asarray(crops, np.float32)
    expect = (spec.channels, spec.input_size, spec.input_size)
    if crops.ndim != 4 or tuple(crops.shape[1:]) != expect:
        raise UserError(f"calibration crops have shape {crops.shape}, the model needs (N, {', '.join(map(str, expect))})")
    if method == "entropy":
        log.warning("entropy calibration through onnxruntime quantize_static equals minmax: ORT's EntropyCalibrater "
                    "defaults to num_bins = num_quantized_bins = 128, so the full range is the only candidate "
                    "threshold, and quantize_static passes no option to change that (docs/quantization.md)")
    act_type, w_type = prof.ort_types()
    extra = dict(prof.extra_options)
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        pre_kind = pre_process(fp32, pre)
        if pre_kind == "none":
            pre = fp32
        reference = pre  # the FP32 graph the drift check compares with (equalization keeps its function)
        equalization = None
        if equalize is not None:
            from .equalize import equalize_activations

            eq = equalize_activations(pre, Path(tmp) / "equalized.onnx", crops, alpha=float(equalize))
            log.info("%s: %s", out.name, eq.summary())
            pre, equalization = eq.path, eq.as_dict()
        graph = onnx.load(str(pre)).graph
        names = {n.name for n in graph.node}
        unknown = sorted(set(exclude) - names)
        if unknown:
            raise UserError(f"exclude: node(s) {unknown[:5]} are not in the pre-processed graph of {fp32} "
                            f"(list them with `edgepose-bench quantize-sweep MODEL --calib X --list-groups`)")
        head = head_node_names(graph)
        if prof.name == "tensorrt":  # the profile its Q/DQ lint checks for per-channel weights
            batched = [n for n in batched_weight_matmuls(graph) if n not in head]
            if batched:
                log.info("%s: %d MatMul(s) with batched (>2-D) constant weights kept in float (no per-channel "
                         "scale exists for them): %s", out.name, len(batched), ", ".join(batched[:5]))
            head = head + batched
        excluded = head + [n for n in exclude if n not in head]
        raw = Path(tmp) / "int8.onnx"
        if len(crops) % batch_size:  # ORT's calibrators stack per-batch outputs: equal batch sizes only
            batch_size = max(d for d in range(1, batch_size + 1) if len(crops) % d == 0)
        reader = CropCalibrationReader(crops, meta.input_name, batch_size=batch_size)
        try:
            with calibrate_outside(float_head_tensors(graph, excluded)):
                quantize_static(str(pre), str(raw), reader, quant_format=QuantFormat.QDQ, per_channel=prof.per_channel,
                                activation_type=act_type, weight_type=w_type, calibrate_method=calib_method,
                                nodes_to_exclude=excluded, nodes_to_quantize=list(only) if only else None,
                                reduce_range=use_reduce_range, extra_options=extra)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, ValueError) and "Too many bins" in str(exc):  # histogram of a near-constant tensor
                raise ModelError(
                    f"{method} calibration of {fp32} failed: on these {len(crops)} calibration crops a tensor to "
                    f"be quantized is nearly constant, so its histogram cannot be built. Calibrate on more, and "
                    f"more varied, face crops, or use the minmax method") from exc
            raise ModelError(f"onnxruntime quantize_static failed for {fp32} ({type(exc).__name__}: {exc}); "
                             f"set EDGEPOSE_DEBUG=1 for the trace") from exc
        drift = int8_drift(reference, raw, crops)
        warn_drift(drift, out.name, prof.name)
        model = onnx.load(str(raw))
        if prof.name == "tensorrt":
            check_tensorrt_qdq(model, source=f"{out.name} (tensorrt profile)")
        num_q = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
        num_dq = sum(n.op_type == "DequantizeLinear" for n in model.graph.node)
        from edgepose.export.checks import embed_metadata

        out_meta = meta.derive(
            precision=prof.precision,
            provenance={"parent": {"path": str(fp32), "sha256": file_sha256(fp32), "format": "onnx"},
                        "parent_provenance": meta.provenance,
                        "command": command if command is not None else " ".join(sys.argv)},
            extra={**meta.extra, "quantization": {
                "profile": prof.name, "description": prof.description, "method": method,
                "percentile": percentile if method == "percentile" else None,
                "activation_type": prof.activation_type, "weight_type": prof.weight_type,
                "per_channel": prof.per_channel, "extra_options": extra, "format": "QDQ",
                "reduce_range": use_reduce_range, "reduce_range_reason": rr_reason,
                "num_calibration": int(len(crops)), "excluded_nodes": excluded, "pre_process": pre_kind,
                "quantized_only": list(only) if only else None, "int8_drift": drift,
                "equalization": equalization,
                "calibration_manifest": None if manifest is None else f"{out.name}.calib.json"}})
        embed_metadata(model, out_meta, out)
    save_sidecar(out, out_meta)
    mpath = write_manifest(out, manifest) if manifest is not None else None
    result = QuantResult(out, prof.name, method, int(len(crops)), excluded, num_q, num_dq,
                         time.perf_counter() - t0, out_meta, mpath, use_reduce_range,
                         drift, equalization)
    log.info(result.summary())
    return result
