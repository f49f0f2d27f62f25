"""6DRepNet (Hempel et al., ICIP 2022; ``thohemp/6DRepNet``, MIT) as an edgepose teacher.

Upstream ``SixDRepNet`` = RepVGG stages renamed ``layer0..layer4`` + ``gap`` + ``linear_reg``
(Linear(C, 6)) + ``compute_rotation_matrix_from_ortho6d`` -- the same Gram-Schmidt as
:func:`edgepose.geometry_torch.sixd_to_matrix` and the same 300W-LP rotation convention, so the
mapping is pure renaming::

    layer{i}.*      -> backbone.stage{i}.*     (train form: rbr_dense / rbr_1x1 / rbr_identity;
                                                deploy form: rbr_reparam, as released)
    linear_reg.*    -> head.fc.*

Preprocessing: 224 x 224 RGB, ImageNet mean/std; the demo enlarges the detector box by 0.2 of
its size on each side, which ``CropPolicy(scale=1.4)`` matches.
"""
from __future__ import annotations

import os

from ..errors import UserError
from ..metadata import file_sha256
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, CropPolicy, PreprocessSpec
from .base import Importer, register_importer

__all__ = ["SixDRepNetImporter", "SIXDREPNET_RULES"]

SIXDREPNET_RULES = [(r"^layer(\d)\.", r"backbone.stage\1."), (r"^linear_reg\.", "head.fc.")]
_ARCHS = ("repvgg_b1g2", "repvgg_b0", "repvgg_a0")


@register_importer
class SixDRepNetImporter(Importer):
    name = "sixdrepnet"
    description = "6DRepNet (RepVGG-B1g2 + 6D rotation head; PyTorch .pth, train or deploy form)"
    suffixes = (".pth", ".pt", ".pkl", ".tar")
    license = "MIT"
    upstream = "https://github.com/thohemp/6DRepNet"

    def load(self, path: str | os.PathLike, arch: str = "repvgg_b1g2", **options):
        from ..models.pose_model import PoseModel
        from .torch_state import load_strict, read_state_dict, rename_keys

        if options:
            raise UserError(f"sixdrepnet importer: unknown options {', '.join(options)} (known: arch)")
        if arch not in _ARCHS:
            raise UserError(f"sixdrepnet: arch must be one of {', '.join(_ARCHS)}, got {arch!r}")
        path = self.check_path(path)
        sd = rename_keys(read_state_dict(path), SIXDREPNET_RULES)
        deploy = any(".rbr_reparam." in k for k in sd)
        spec = PreprocessSpec(input_size=224, color_order="RGB", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                              crop=CropPolicy(scale=1.4, box_source="detector"))
        model = PoseModel.build(arch, head="6d", preprocess=spec, **({"deploy": True} if deploy else {}))
        load_strict(model, sd, f"6DRepNet {arch} ({'deploy' if deploy else 'train'} form) from {path.name}")
        model.provenance = {"imported_from": {"teacher": "sixdrepnet", "file": path.name, "sha256": file_sha256(path),
                                              "format": "torch-state-dict", "form": "deploy" if deploy else "train",
                                              "upstream": self.upstream, "license": self.license}}
        return model.eval()
