"""MACs from an ONNX graph agree with torch's own count; the GEMM peak is a plausible rate."""
from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")


def test_onnx_macs_equal_torch_flop_counter(tmp_path):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edgepose.export.cost import onnx_macs
    from edgepose.export import export_onnx
    from edgepose.models.pose_model import PoseModel
    from edgepose.preprocess import PreprocessSpec

    model = PoseModel.build("mobilenet_v1_050", head="6d", preprocess=PreprocessSpec(input_size=64)).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, 64, 64))
    torch_macs = counter.get_total_flops() // 2
    path = tmp_path / "m.onnx"
    export_onnx(model, path, simplify=False)
    macs = onnx_macs(path)
    # the same convolutions and matrix products; torch also counts a few element-wise products in Gram-Schmidt
    assert abs(macs - torch_macs) / torch_macs < 0.02, (macs, torch_macs)


def test_gemm_peak_is_a_plausible_single_core_rate():
    from edgepose.export.cost import gemm_peak_gflops

    peak = gemm_peak_gflops(n=256, repeats=3)
    assert 0.5 < peak < 500.0
