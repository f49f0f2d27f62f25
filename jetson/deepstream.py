"""DeepStream nvinfer secondary-GIE (SGIE) config for an edgepose pose model.

Generated from the artifact's metadata so DeepStream feeds the model exactly like edgepose
does (docs/jetson.md, "DeepStream"; NVIDIA's Gst-nvinfer documentation): ``network-type=100`` (no built-in parser), ``output-tensor-meta=1``
(raw rotation/euler tensors attached for a pad probe), ``process-mode=2`` (operate on the face
PGIE's objects), colour format from ``preprocess.color_order``, and the normalisation.

nvinfer normalises ``y = net-scale-factor * (x - offsets[c])`` with ONE scale factor for all
channels, while edgepose uses ``y = (x * pixel_scale - mean[c]) / std[c]``.  So
``offsets[c] = mean[c] / pixel_scale`` is exact, and the scale is exact only when every
``std[c]`` is equal.  Otherwise the per-channel scale ``s[c] = pixel_scale / std[c]`` is
approximated by the single factor that minimises the largest relative error over channels,
``k = 2 s_min s_max / (s_min + s_max)`` (error ``(s_max - s_min) / (s_max + s_min)``, 1.1 % for
the ImageNet std); the value is written into the file as a comment.  Use a model trained with
equal std (or fold 1/std into the first conv) when this matters.

Note also: nvinfer scales the object crop to the network size (optionally keeping the aspect
ratio) -- it does not apply edgepose's square crop policy (``crop.scale``, shifts).  Enlarge
the PGIE boxes accordingly or use nvdspreprocess; the generator records the policy in a comment.
"""
from __future__ import annotations

import configparser
import io
import os
from dataclasses import dataclass
from pathlib import Path

from edgepose.errors import ModelError, UserError
from edgepose.metadata import ArtifactMetadata, MetadataError, atomic_write_text, load_metadata

__all__ = ["single_scale_factor", "SgieOptions", "sgie_config", "write_sgie_config", "NETWORK_MODE", "COLOR_FORMAT"]

NETWORK_MODE = {"fp32": 0, "int8-tensorrt": 1, "int8": 1, "fp16": 2}  # nvinfer: 0 FP32, 1 INT8, 2 FP16
COLOR_FORMAT = {"RGB": 0, "BGR": 1, "GRAY": 2}  # nvinfer model-color-format


def single_scale_factor(pixel_scale: float, std) -> tuple[float, float]:
    """Best single nvinfer scale for per-channel stds -> (factor, worst relative error)."""
    scales = [pixel_scale / float(s) for s in std]
    if any(s <= 0 for s in scales):
        raise UserError(f"std must be positive, got {list(std)}")
    lo, hi = min(scales), max(scales)
    k = 2.0 * lo * hi / (lo + hi)
    return k, (hi - lo) / (hi + lo)


@dataclass
class SgieOptions:
    gie_unique_id: int = 2
    operate_on_gie_id: int = 1
    operate_on_class_ids: str | None = "0"  # the face class of the PGIE
    batch_size: int = 16
    min_face: int = 32  # input-object-min-width/height: skip faces too small for a reliable pose
    engine_file: str | None = None  # model-engine-file (reused if present, else nvinfer builds from onnx)
    precision: str | None = None  # override network-mode; default from the metadata
    dla_core: int | None = None
    gpu_id: int = 0
    maintain_aspect_ratio: bool = True


def _channels(meta: ArtifactMetadata) -> int:
    spec = meta.preprocess
    return spec.channels if spec.color_order == "GRAY" else 3


def sgie_config(model_path: str | os.PathLike, meta: ArtifactMetadata, options: SgieOptions) -> str:
    spec = meta.preprocess
    if spec.layout != "NCHW":
        raise ModelError(f"nvinfer feeds planar (NCHW) input; this model takes {spec.layout}")
    c = _channels(meta)
    if spec.color_order == "GRAY" and c != 1:
        raise ModelError("this model replicates GRAY to 3 channels; nvinfer's GRAY format feeds 1 channel. "
                         "Export a 1-channel GRAY model or use model-color-format RGB with an IR camera")
    mean = list(spec.mean)[:c] if len(spec.mean) >= c else list(spec.mean) * c
    std = list(spec.std)[:c] if len(spec.std) >= c else list(spec.std) * c
    factor, err = single_scale_factor(spec.pixel_scale, std)
    offsets = [m / spec.pixel_scale for m in mean]
    precision = options.precision or meta.precision
    if precision not in NETWORK_MODE:
        raise ModelError(f"cannot map precision {precision!r} to an nvinfer network-mode (fp32, fp16, int8)")
    model_path = Path(model_path)
    prop: dict[str, str] = {
        "gpu-id": str(options.gpu_id),
        "gie-unique-id": str(options.gie_unique_id),
        "operate-on-gie-id": str(options.operate_on_gie_id),
        "process-mode": "2",
        "network-type": "100",
        "output-tensor-meta": "1",
        "network-mode": str(NETWORK_MODE[precision]),
        "batch-size": str(options.batch_size),
        "model-color-format": str(COLOR_FORMAT[spec.color_order]),
        "net-scale-factor": f"{factor:.10g}",
        "offsets": ";".join(f"{o:.6g}" for o in offsets),
        "infer-dims": f"{c};{spec.input_size};{spec.input_size}",
        "input-object-min-width": str(options.min_face),
        "input-object-min-height": str(options.min_face),
        "maintain-aspect-ratio": "1" if options.maintain_aspect_ratio else "0",
        "output-blob-names": ";".join(meta.outputs) if meta.outputs else "rotation;euler",
    }
    if options.operate_on_class_ids is not None:
        prop["operate-on-class-ids"] = options.operate_on_class_ids
    if model_path.suffix.lower() == ".onnx":
        prop["onnx-file"] = str(model_path)
        prop["model-engine-file"] = options.engine_file or str(
            model_path.with_name(f"{model_path.name}_b{options.batch_size}_gpu{options.gpu_id}_{precision}.engine"))
    else:
        prop["model-engine-file"] = str(model_path)
    if options.dla_core is not None:
        prop["enable-dla"] = "1"
        prop["use-dla-core"] = str(options.dla_core)
    header = [
        f"# DeepStream nvinfer secondary GIE for the edgepose pose model {model_path.name}",
        f"# generated by `edgepose jetson deepstream-config` from the model's metadata ({meta.model}, {precision})",
        f"# edgepose normalisation: y = (x * {spec.pixel_scale:.6g} - mean) / std, mean={mean}, std={std}",
        f"# nvinfer uses ONE scale: net-scale-factor = {factor:.6g} (worst relative error {err * 100:.2f} % "
        f"over channels; exact when all std are equal)",
        f"# crop policy NOT applied by nvinfer: scale={spec.crop.scale} shift=({spec.crop.shift_x}, "
        f"{spec.crop.shift_y}); enlarge the PGIE face boxes accordingly",
        "# outputs (read them in an nvinfer src-pad probe via NvDsInferTensorMeta): " +
        "; ".join(f"{k}: {v}" for k, v in meta.outputs.items()),
    ]
    cp = configparser.ConfigParser()
    cp.optionxform = str  # keep the keys' case
    cp["property"] = prop
    buf = io.StringIO()
    cp.write(buf, space_around_delimiters=False)  # nvinfer examples use key=value
    return "\n".join(header) + "\n" + buf.getvalue()


def write_sgie_config(model_path: str | os.PathLike, out: str | os.PathLike, options: SgieOptions | None = None) -> Path:
    model_path = Path(model_path)
    try:
        meta = load_metadata(model_path)
    except FileNotFoundError:
        raise ModelError(f"model not found: {model_path}") from None
    except MetadataError as exc:
        raise ModelError(str(exc)) from None
    text = sgie_config(model_path, meta, options or SgieOptions())
    out = Path(out)
    atomic_write_text(out, text)
    return out
