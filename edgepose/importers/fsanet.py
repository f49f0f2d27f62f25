"""FSA-Net (Yang et al., CVPR 2019) as an edgepose teacher, from the ONNX nets of
``omasaht/headpose-fsanet-pytorch`` (MIT; ``pretrained/fsanet-1x1-iter-688590.onnx`` and
``fsanet-var-iter-688590.onnx``).

The released nets exist only as ONNX (opset 9, input [1, 3, 64, 64], output yaw, pitch, roll in
degrees, 300W-LP / AFLW signs = ours).  Rather than run them beside torch with onnxruntime, the
import converts each graph into torch (:class:`edgepose.models.backbones.onnx_graph.OnnxGraph`:
the nodes as data, the weights as parameters), so the teacher is an ordinary PoseModel
(``"fsanet"`` backbone + ``"euler"`` head) that distils, evaluates, benchmarks and exports like
any other, and the converted graph is checked against onnxruntime on the spot.

Like upstream's demo the model averages the nets it was given (both, from a folder) in Euler
angles.  Input as that demo: BGR, ``(x - 127.5) / 128``, 64 x 64, from a square box
(``CropPolicy(scale=FSANET_CROP_SCALE)`` on YuNet boxes, chosen on the fixtures: docs/importers.md).
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import ModelError, UserError
from ..metadata import file_sha256
from ..preprocess import CropPolicy, PreprocessSpec
from .base import Importer, register_importer

__all__ = ["FSANetImporter", "FSANET_PREPROCESS", "FSANET_CROP_SCALE", "onnx_to_graph", "fsanet_cache_path"]

log = logging.getLogger(__name__)

#: detector-box crop scale for YuNet boxes (docs/importers.md: measured over 1.2 / 1.4 / 1.6)
FSANET_CROP_SCALE = 1.4
FSANET_PREPROCESS = PreprocessSpec(input_size=64, color_order="BGR", mean=(127.5 / 255,) * 3, std=(128 / 255,) * 3,
                                   crop=CropPolicy(scale=FSANET_CROP_SCALE, box_source="detector"))
_SMALL = 16  # int / float constants up to this size stay Python values (shape arithmetic, scalars)


def fsanet_cache_path() -> Path:
    from ..runtime.fetch import cache_dir

    return cache_dir() / "teachers" / "fsanet"


def _attr(a):
    import onnx
    from onnx import numpy_helper

    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        arr = numpy_helper.to_array(v)
        return arr.reshape(-1)[0].item() if arr.size == 1 else arr.tolist()
    return list(v) if isinstance(v, (list, tuple)) or hasattr(v, "__len__") and not isinstance(v, str) else v


def onnx_to_graph(path: Path) -> tuple[dict, dict]:
    """An ONNX file -> (graph description for OnnxGraph, {tensor name: float32 array})."""
    import onnx
    from onnx import numpy_helper

    from ..models.backbones.onnx_graph import SUPPORTED_OPS

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf errors come in many types
        raise ModelError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from None
    g = model.graph
    ops = {n.op_type for n in g.node}
    if ops - SUPPORTED_OPS:
        raise ModelError(f"{path.name}: ONNX operators {', '.join(sorted(ops - SUPPORTED_OPS))} are not supported "
                         f"by the converter; this importer reads the FSA-Net releases of omasaht/headpose-fsanet-pytorch")
    init_names = {i.name for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in init_names]
    if len(inputs) != 1 or len(g.output) != 1:
        raise ModelError(f"{path.name}: expected one image input and one output, got {inputs} -> "
                         f"{[o.name for o in g.output]}")
    constants, tensors = {}, {}

    def keep(name: str, arr: np.ndarray) -> None:
        if arr.dtype.kind in "iu" or arr.size == 1 and arr.ndim == 0:
            if arr.size > _SMALL:
                raise ModelError(f"{path.name}: integer tensor {name} of {arr.size} values is not supported")
            constants[name] = arr.item() if arr.ndim == 0 else [int(v) for v in arr.reshape(-1)] \
                if arr.dtype.kind in "iu" else arr.tolist()
        else:
            tensors[name] = np.asarray(arr, np.float32)

    for init in g.initializer:
        keep(init.name, numpy_helper.to_array(init))
    nodes = []
    for n in g.node:
        attrs = {a.name: _attr(a) for a in n.attribute}
        if n.op_type == "Constant":
            keep(n.output[0], numpy_helper.to_array(n.attribute[0].t))
            continue
        nodes.append([n.op_type, list(n.input), list(n.output), attrs])
    graph = {"input": inputs[0], "output": g.output[0].name, "nodes": nodes, "constants": constants,
             "tensors": {k: list(v.shape) for k, v in tensors.items()}}
    return graph, tensors


def _onnx_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.onnx"))
        if not files:
            raise ModelError(f"fsanet: no .onnx file in {path}; pass the folder holding fsanet-1x1-*.onnx / "
                             f"fsanet-var-*.onnx or the files themselves")
        return files
    if not path.is_file():
        raise ModelError(f"fsanet: weight file not found: {path}")
    if path.suffix.lower() != ".onnx":
        raise ModelError(f"fsanet: expected an .onnx file (or a folder of them), got {path.name}")
    return [path]


@register_importer
class FSANetImporter(Importer):
    name = "fsanet"
    description = "FSA-Net (64 px, yaw/pitch/roll; ONNX converted to torch, both released nets averaged)"
    suffixes = (".onnx",)
    license = "MIT (code); weights trained on 300W-LP: non-commercial research data"
    upstream = "https://github.com/omasaht/headpose-fsanet-pytorch"

    def cache_path(self) -> Path:
        return fsanet_cache_path()

    def install(self, path) -> Path:
        files = self._files(path)
        self.load(files)  # refuse to cache what does not import
        dest = fsanet_cache_path()
        dest.mkdir(parents=True, exist_ok=True)
        for f in files:
            if f.resolve() != (dest / f.name).resolve():
                shutil.copyfile(f, dest / f.name)
        return dest

    @staticmethod
    def _files(path) -> list[Path]:
        paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
        files = [f for p in paths for f in _onnx_files(p)]
        if len({f.name for f in files}) != len(files):
            raise UserError("fsanet: the same file was given twice")
        return files

    def load(self, path, check: bool = True, **options):
        """One .onnx, several, or a folder of them -> PoseModel("fsanet", head="euler") averaging the nets."""
        import torch

        from ..models.pose_model import PoseModel

        if options:
            raise UserError(f"fsanet importer: unknown options {', '.join(options)} (known: check)")
        files = self._files(path)
        converted = [onnx_to_graph(f) for f in files]
        model = PoseModel.build("fsanet", head="euler", graphs=[g for g, _ in converted],
                                preprocess=PreprocessSpec.from_dict(FSANET_PREPROCESS.to_dict()))
        with torch.no_grad():
            for net, (_, tensors) in zip(model.backbone.nets, converted):
                for name, arr in tensors.items():
                    getattr(net, net._slots[name]).copy_(torch.from_numpy(np.array(arr)))
        model.eval()
        if check:
            for net, f in zip(model.backbone.nets, files):
                _check_against_onnxruntime(net, f)
        model.provenance = {"imported_from": {
            "teacher": self.name, "files": [f.name for f in files], "sha256": [file_sha256(f) for f in files],
            "format": "onnx (converted to torch)", "upstream": self.upstream, "license": self.license},
            "decode": "mean of the nets' (yaw, pitch, roll) in degrees, as upstream's demo"}
        log.info("imported FSA-Net from %s", ", ".join(f.name for f in files))
        return model


def _check_against_onnxruntime(net, path: Path, atol: float = 1e-3) -> None:
    """The converted graph must reproduce onnxruntime on the file (random 64 px input, batch 1)."""
    import torch

    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a core dependency
        return
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    if ref.shape != ours.shape or not np.allclose(ref, ours, atol=atol):
        raise ModelError(f"{path.name}: the converted graph differs from onnxruntime (max "
                         f"{float(np.abs(ref - ours).max()) if ref.shape == ours.shape else 'shape'} deg); "
                         f"the file is not a supported FSA-Net release")
