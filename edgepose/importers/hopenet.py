"""HopeNet (Ruiz et al., CVPRW 2018; ``natanielruiz/deep-head-pose``, Apache-2.0) as an edgepose teacher.

Upstream ``Hopenet`` = torchvision ResNet (``conv1, bn1, layer1..4``) + ``fc_yaw``, ``fc_pitch``,
``fc_roll`` (66 bins each) + an unused ``fc_finetune``.  Mapping::

    conv1/bn1/layer*.*  -> backbone.*          (our ResNet keeps torchvision's names)
    fc_yaw|pitch|roll.* -> head.fc.yaw|pitch|roll.*
    fc_finetune.*       -> dropped (not used at inference)

Decode: HopeNet's test code takes ``sum_k p_k * 3k - 99`` (bin left edges); like WHENet's
pitch/roll the bins are imported as ``BinSpec(-100.5, 97.5, 3)`` so that edgepose's centre
expectation reproduces it exactly.  Preprocessing: 224 x 224 RGB, ImageNet mean/std.
"""
from __future__ import annotations

import os

from ..errors import UserError
from ..metadata import BinSpec, file_sha256
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, CropPolicy, PreprocessSpec
from .base import Importer, register_importer

__all__ = ["HopeNetImporter", "HOPENET_RULES", "hopenet_bins"]

HOPENET_RULES = [(r"^fc_(yaw|pitch|roll)\.", r"head.fc.\1."), (r"^(?!head\.)", "backbone.")]
_ARCHS = ("resnet50", "resnet18")


def hopenet_bins() -> dict[str, BinSpec]:
    """66 bins whose centres are HopeNet's decode values 3k - 99 on every axis."""
    return {a: BinSpec(-100.5, 97.5, 3.0, False) for a in ("pitch", "yaw", "roll")}


@register_importer
class HopeNetImporter(Importer):
    name = "hopenet"
    description = "HopeNet (ResNet-50, 3 x 66 bins; PyTorch .pkl/.pth state dict)"
    suffixes = (".pkl", ".pth", ".pt")
    license = "Apache-2.0"
    upstream = "https://github.com/natanielruiz/deep-head-pose"

    def load(self, path: str | os.PathLike, arch: str = "resnet50", **options):
        from ..models.pose_model import PoseModel
        from .torch_state import load_strict, read_state_dict, rename_keys

        if options:
            raise UserError(f"hopenet importer: unknown options {', '.join(options)} (known: arch)")
        if arch not in _ARCHS:
            raise UserError(f"hopenet: arch must be one of {', '.join(_ARCHS)}, got {arch!r}")
        path = self.check_path(path)
        sd = rename_keys(read_state_dict(path), HOPENET_RULES, drop=[r"^fc_finetune\.", r"^fc\."])
        spec = PreprocessSpec(input_size=224, color_order="RGB", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                              crop=CropPolicy(scale=1.4, box_source="detector"))
        model = PoseModel.build(arch, head="bins", bins=hopenet_bins(), preprocess=spec)
        load_strict(model, sd, f"HopeNet {arch} from {path.name}")
        model.provenance = {"imported_from": {"teacher": "hopenet", "file": path.name, "sha256": file_sha256(path),
                                              "format": "torch-state-dict", "upstream": self.upstream,
                                              "license": self.license},
                            "decode": "softmax expectation over bin centres 3k-99 = HopeNet's test decode"}
        return model.eval()
