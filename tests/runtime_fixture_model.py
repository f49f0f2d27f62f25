"""TEST FIXTURE ONLY: a tiny, randomly initialised pose network exported to ONNX with metadata.

The runtime tests need a real ONNX pose model that goes through onnxruntime exactly like a
trained one (input name, metadata sidecar, dynamic or fixed batch, 6D or rotation outputs).
Its predictions are meaningless; tests check plumbing, shapes, batching, decoding and parity
with torch -- never accuracy.  Trained models come from `edgepose train` / `edgepose export`.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgepose.metadata import ArtifactMetadata, save_sidecar
from edgepose.preprocess import CropPolicy, PreprocessSpec


def _net(head: str, input_size: int, channels: int, seed: int):
    import torch
    from torch import nn

    from edgepose import geometry_torch

    torch.manual_seed(seed)

    class FixturePoseNet(nn.Module):
        """conv -> pool -> linear 6D head (+ in-graph Gram-Schmidt when head == 'rotation')."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(channels, 8, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(16, 6)
            with torch.no_grad():  # start near identity so decoded poses are well conditioned
                self.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

        def forward(self, x):
            sixd = self.head(self.features(x))
            if head == "sixd":
                return sixd
            if head == "nan":
                return sixd * float("nan")
            R = geometry_torch.sixd_to_matrix(sixd)
            return R, geometry_torch.matrix_to_euler(R)

    return FixturePoseNet().eval()


def export_fixture_model(out_dir: Path, name: str = "fixture_pose", head: str = "rotation",
                         input_size: int = 64, channels: int = 3, fixed_batch: int | None = None,
                         meta_input_size: int | None = None, color_order: str = "RGB", seed: int = 0):
    """Export the fixture net; returns (onnx_path, torch_module).

    head: "rotation" (outputs rotation + euler), "sixd" (one (N,6) output) or "nan".
    meta_input_size: write a different input size into the sidecar (to test the mismatch error).
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net = _net(head, input_size, channels, seed)
    path = out_dir / f"{name}.onnx"
    x = torch.zeros(fixed_batch or 2, channels, input_size, input_size)
    names = ["rotation", "euler"] if head == "rotation" else ["sixd"]
    dyn = None if fixed_batch else {"input": {0: "batch"}, **{n: {0: "batch"} for n in names}}
    with warnings.catch_warnings():  # the legacy exporter is deprecated but 10x faster for a fixture
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x,), str(path), input_names=["input"], output_names=names,
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    spec = PreprocessSpec(input_size=meta_input_size or input_size, color_order=color_order,
                          channels=channels, crop=CropPolicy(scale=1.4))
    meta = ArtifactMetadata(model="test_fixture_posenet", head="6d", preprocess=spec, format="onnx",
                            provenance={"note": "random test fixture, not a trained model"})
    save_sidecar(path, meta)
    return path, net


def torch_reference(net, batch: np.ndarray) -> np.ndarray:
    """The fixture net's rotation for a batch, computed in torch (for parity tests)."""
    import torch

    with torch.no_grad():
        out = net(torch.from_numpy(batch))
    return (out[0] if isinstance(out, tuple) else out).numpy()
