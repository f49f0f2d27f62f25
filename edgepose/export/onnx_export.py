"""``export_onnx``: PoseModel or checkpoint -> one ONNX file + metadata sidecar + parity report.

Steps (each one can fail with a clear :class:`~edgepose.errors.ModelError`):

1. load the model (``PoseModel.from_checkpoint``) or deep-copy the given one; ``eval()``;
   ``reparameterize()`` (RepVGG branch fusion; a no-op for other backbones);
2. export :class:`~edgepose.export.wrapper.ExportWrapper` (in-graph R + Euler decode):
   opset >= 18 with the dynamo exporter (torch 2.13's default; TensorRT 10 parses opset 18, ORT
   static INT8 needs < 21), opset 17 with the legacy TorchScript exporter (dynamo cannot
   down-convert, docs/export.md, "--opset"); one file, no external data; batch axis dynamic
   (1..max_batch) unless ``dynamic_batch=False``;
3. simplify with onnxslim (constant folding, dead nodes) and ``onnx.checker``;
4. parity: onnxruntime vs the *un-reparameterized* PyTorch model on a random batch and on the
   optional real inputs, plus batch 1 and batch ``min(5, max_batch)`` runs for dynamic graphs;
5. metadata: ``meta.derive(format="onnx", precision="fp32", ...)`` with provenance (source
   checkpoint sha256, command, library versions) and the measured diffs, embedded in
   ``metadata_props["edgepose"]`` and written to the ``<file>.json`` sidecar (with the ONNX sha256).

The output file is only replaced once every check passed (atomic rename).
"""
from __future__ import annotations

import copy
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, UserError
from ..metadata import ROI_OUTPUTS, ArtifactMetadata, file_sha256, save_sidecar
from .checks import embed_metadata, max_diffs, ort_session, run_onnx
from .wrapper import INPUT_NAME, ExportWrapper, output_names

__all__ = ["ExportReport", "export_onnx", "load_model_for_export", "DEFAULT_OPSET", "DEFAULT_TOLERANCE"]

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
DEFAULT_TOLERANCE = 1e-4  # max |R_torch - R_onnx| accepted (R entries are in [-1, 1])


@dataclass
class ExportReport:
    path: Path
    sidecar: Path
    opset: int
    exporter: str  # "dynamo" | "torchscript"
    input_shape: tuple  # (N|"batch", C, S, S)
    dynamic_batch: bool
    max_batch: int | None
    simplified: bool
    num_nodes: int
    max_abs_diff: dict[str, float]  # {"random.rotation", "random.euler_deg", "real.*", "batch1.*", ...}
    reparameterized: bool
    sha256: str
    seconds: float
    metadata: ArtifactMetadata = field(repr=False)

    @property
    def worst_rotation_diff(self) -> float:
        return max(v for k, v in self.max_abs_diff.items() if k.endswith("rotation"))

    def summary(self) -> str:
        diffs = ", ".join(f"{k}={v:.2e}" for k, v in sorted(self.max_abs_diff.items()))
        return (f"wrote {self.path} (opset {self.opset}, {self.exporter}, input {self.input_shape}, "
                f"{self.num_nodes} nodes{', simplified' if self.simplified else ''}) + {self.sidecar.name}; "
                f"max |torch - onnxruntime|: {diffs}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"], d["sidecar"] = str(self.path), str(self.sidecar)
        d["metadata"] = self.metadata.to_dict()
        return d


def load_model_for_export(source) -> tuple[Any, dict]:
    """(model copy in eval mode, parent info) from a PoseModel or a checkpoint path."""
    import torch

    if isinstance(source, torch.nn.Module):
        if not hasattr(source, "metadata"):
            raise ModelError(f"{type(source).__name__} has no metadata(); export needs an edgepose PoseModel "
                             f"(edgepose.models.create_model or PoseModel.from_checkpoint)")
        return copy.deepcopy(source).eval(), {"path": None, "sha256": None, "format": "torch (in memory)"}
    path = Path(source)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}; pass a .pt written by `edgepose train` or `edgepose import`")
    from ..models.pose_model import PoseModel

    try:
        model = PoseModel.from_checkpoint(path)
    except UserError:
        raise
    except Exception as exc:  # pickle / zip / key errors from a damaged or foreign file
        raise ModelError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); it is damaged or not an "
                         f"edgepose checkpoint -- re-create it with `edgepose train` or `edgepose import`") from None
    return model.eval(), {"path": str(path), "sha256": file_sha256(path), "format": "torch"}


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    v = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import onnxslim

        v["onnxslim"] = onnxslim.__version__
    except ImportError:  # pragma: no cover - core dependency
        pass
    from .. import __version__

    v["edgepose"] = __version__
    return v


def _torch_reference(model, x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        outs = ExportWrapper(model)(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
    return {name: v.numpy() for name, v in zip(output_names(model), outs)}


_NOISY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo", "torch.fx")


@contextmanager
def _quiet_exporter():
    """The exporters log every rewrite at INFO and print progress to stdout; keep the CLI readable."""
    saved = {n: logging.getLogger(n).level for n in _NOISY_LOGGERS}
    for n in _NOISY_LOGGERS:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def _export_graph(wrapper, dummy, tmp: Path, opset: int, dynamic_batch: bool, max_batch: int) -> str:
    import torch

    names = list(output_names(wrapper.model))
    if opset >= 18:
        kw: dict[str, Any] = {}
        if dynamic_batch:
            kw["dynamic_shapes"] = {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=max_batch)}}
        with _quiet_exporter():
            torch.onnx.export(wrapper, (dummy,), str(tmp), dynamo=True, opset_version=opset, external_data=False,
                              input_names=[INPUT_NAME], output_names=names, **kw)
        return "dynamo"
    kw = {}
    if dynamic_batch:
        kw["dynamic_axes"] = {n: {0: "batch"} for n in (INPUT_NAME, *names)}
    with _quiet_exporter():  # also hides the legacy exporter's DeprecationWarning
        torch.onnx.export(wrapper, (dummy,), str(tmp), dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=[INPUT_NAME], output_names=names, **kw)
    return "torchscript"


def export_onnx(model_or_ckpt, out_path: str | os.PathLike, *, input_size: int | None = None,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True, max_batch: int = 32,
                simplify: bool = True, real_inputs: np.ndarray | None = None,
                tolerance: float = DEFAULT_TOLERANCE, command: str | None = None, seed: int = 0,
                flip_tta: bool | None = None) -> ExportReport:
    """Export a PoseModel (or a checkpoint path) to ``out_path``; see the module docstring.

    ``real_inputs``: optional (N, C, S, S) float32 batch already preprocessed with the model's
    ``PreprocessSpec`` (e.g. face crops) for the parity check.  Raises ModelError when the
    onnxruntime outputs differ from PyTorch by more than ``tolerance`` (rotation entries).
    ``flip_tta``: bake the test-time flip into the graph (True), leave it out (False), or do what the
    model's metadata says (None; :meth:`PoseModel.forward_flip_tta`).
    """
    import onnx
    import torch

    t0 = time.perf_counter()
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise UserError(f"output file {out_path} must end in .onnx")
    if opset < 17:
        raise UserError(f"opset {opset} is too old: use 17 (legacy exporter) or 18+ (TensorRT 10 parses 18)")
    if dynamic_batch and max_batch < 2:
        raise UserError(f"--max-batch must be >= 2 for a dynamic batch axis (got {max_batch}); "
                        f"use --static-batch for a batch-1 graph")
    model, parent = load_model_for_export(model_or_ckpt)
    if flip_tta is not None:
        model.flip_tta = bool(flip_tta)
    meta: ArtifactMetadata = model.metadata()
    roi = getattr(model, "roi_heads", None) is not None
    spec = meta.preprocess
    size = int(input_size or spec.input_size)
    if size < 32:
        raise UserError(f"input size {size} is too small; EfficientNet/ResNet-style backbones need >= 32 px")
    if size != spec.input_size:
        log.warning("exporting at %d px although the model was trained at %d px; accuracy may drop",
                    size, spec.input_size)
        spec.input_size = size
    shape = (spec.channels, size, size)
    if real_inputs is not None:
        real_inputs = np.asarray(real_inputs, np.float32)
        if real_inputs.ndim != 4 or tuple(real_inputs.shape[1:]) != shape:
            raise UserError(f"real inputs must be (N, {shape[0]}, {size}, {size}) preprocessed crops, "
                            f"got {tuple(real_inputs.shape)}")

    reference = copy.deepcopy(model).eval()  # as trained (before branch fusion)
    reparameterized = hasattr(model, "reparameterize")
    if reparameterized:
        model.reparameterize()
    model.eval()
    wrapper = ExportWrapper(model).eval()

    rng = np.random.default_rng(seed)
    n_random = min(3, max_batch) if dynamic_batch else 1
    random_batch = rng.standard_normal((n_random, *shape)).astype(np.float32)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".export-") as tmpdir:
        tmp = Path(tmpdir) / "raw.onnx"
        log.info("exporting %s/%s at %d px, opset %d (%s exporter; dynamo takes 5-60 s)", meta.model, meta.head,
                 size, opset, "dynamo" if opset >= 18 else "legacy")
        try:
            exporter = _export_graph(wrapper, torch.from_numpy(random_batch[:2] if dynamic_batch else random_batch[:1]),
                                     tmp, opset, dynamic_batch, max_batch)
        except Exception as exc:
            raise ModelError(f"ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                             f"set EDGEPOSE_DEBUG=1 for the full trace") from exc
        onnx_model = onnx.load(str(tmp))
        simplified = False
        if simplify:
            onnxslim = require_onnxslim()
            with _quiet_exporter():
                onnx_model = onnxslim.slim(onnx_model)
            simplified = True
        onnx.checker.check_model(onnx_model, full_check=True)
        got_opset = max(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))
        if got_opset != opset:
            raise ModelError(f"asked for opset {opset} but the exporter wrote {got_opset}; use --opset 18 (dynamo) "
                             f"or --opset 17 (legacy exporter)")
        checked = Path(tmpdir) / "checked.onnx"
        onnx.save(onnx_model, str(checked))

        sess = ort_session(checked)
        diffs: dict[str, float] = {}
        batches = {"random": random_batch}
        if real_inputs is not None and len(real_inputs):
            batches["real"] = real_inputs
        if dynamic_batch:
            batches["batch1"] = random_batch[:1]
            nb = min(5, max_batch)
            batches[f"batch{nb}"] = rng.standard_normal((nb, *shape)).astype(np.float32)
        for name, x in batches.items():
            chunks = [x[i:i + max_batch] for i in range(0, len(x), max_batch)] if dynamic_batch else [x[i:i + 1] for i in range(len(x))]
            for c in chunks:
                got = run_onnx(sess, c)
                if got["rotation"].shape != (len(c), 3, 3) or got["euler"].shape != (len(c), 3):
                    raise ModelError(f"exported graph returned shapes {got['rotation'].shape}/{got['euler'].shape} "
                                     f"for a batch of {len(c)}")
                if roi and (got["presence"].shape != (len(c), 1) or got["box"].shape != (len(c), 4)):
                    raise ModelError(f"exported graph returned presence/box shapes {got['presence'].shape}/"
                                     f"{got['box'].shape} for a batch of {len(c)}")
                for k, v in max_diffs(_torch_reference(reference, c), got).items():
                    diffs[f"{name}.{k}"] = max(diffs.get(f"{name}.{k}", 0.0), v)
        del sess
        worst = max(v for k, v in diffs.items() if k.endswith("rotation"))
        if not np.isfinite(worst) or worst > tolerance:
            raise ModelError(f"ONNX parity check failed: max |R_torch - R_onnxruntime| = {worst:.3g} > {tolerance:g} "
                             f"({diffs}); the file was not written. Report this with the model name and opset")
        # the ROI heads' outputs are a probability and crop units: the same absolute tolerance applies
        worst_roi = max((v for k, v in diffs.items() if k.endswith((".presence", ".box"))), default=0.0)
        if not np.isfinite(worst_roi) or worst_roi > tolerance:
            raise ModelError(f"ONNX parity check failed for the presence / box heads: max |torch - onnxruntime| = "
                             f"{worst_roi:.3g} > {tolerance:g}; the file was not written")

        versions = _versions()
        outputs = {"rotation": "(N,3,3) float32 rotation matrix R, convention below",
                   "euler": "(N,3) float32 (pitch, yaw, roll) in degrees, decoded from R in the graph"}
        if roi:  # declared in the sidecar: runtimes read presence / box only from files that say so
            outputs.update(ROI_OUTPUTS)
        out_meta = meta.derive(
            format="onnx", precision="fp32", input_name=INPUT_NAME, preprocess=spec,
            outputs=outputs,
            provenance={"parent": parent, "parent_provenance": meta.provenance,
                        "command": command if command is not None else " ".join(sys.argv),
                        "versions": versions},
            extra={**meta.extra, "onnx": {"opset": opset, "exporter": exporter, "dynamic_batch": dynamic_batch,
                                          "max_batch": max_batch if dynamic_batch else 1, "simplified": simplified,
                                          "reparameterized": reparameterized, "max_abs_diff": diffs,
                                          "tolerance": tolerance}})
        embed_metadata(onnx_model, out_meta, out_path)
    sidecar = save_sidecar(out_path, out_meta)
    report = ExportReport(path=out_path, sidecar=sidecar, opset=opset, exporter=exporter,
                          input_shape=("batch" if dynamic_batch else 1, *shape), dynamic_batch=dynamic_batch,
                          max_batch=max_batch if dynamic_batch else 1, simplified=simplified,
                          num_nodes=len(onnx_model.graph.node), max_abs_diff=diffs, reparameterized=reparameterized,
                          sha256=out_meta.sha256, seconds=time.perf_counter() - t0, metadata=out_meta)
    log.info(report.summary())
    return report


def require_onnxslim():
    """onnxslim, or a DependencyError naming the extra (checked before long work, not after it)."""
    from ..errors import require

    return require("onnxslim", "quant", "ONNX export with simplification (simplify=True)")
