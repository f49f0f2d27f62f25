"""QAT (fake-quant fine-tuning -> export -> tensorrt Q/DQ), the quant_pre_process path, float layer
groups for the sensitivity sweep, and the extra CLI options.  One ResNet-18 @ 64 px per session."""
from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgepose.quantize.qat import FakeQuantConv, convert_back, prepare_qat, qat_finetune  # noqa: E402
from edgepose.errors import UserError  # noqa: E402


def _model(seed: int = 0):
    from edgepose.models import create_model

    torch.manual_seed(seed)
    m = create_model("resnet18", head="6d", input_size=64)
    # non-trivial BN statistics, as after training (fresh BN would make folding a no-op)
    g = torch.Generator().manual_seed(seed)
    for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    from edgepose.export import export_onnx

    d = tmp_path_factory.mktemp("qat")
    m = _model()
    m.save_checkpoint(d / "m.pt")
    export_onnx(m, d / "m.onnx", command="test")
    return d / "m.onnx"


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).standard_normal((16, 3, 64, 64)).astype(np.float32)


def test_fold_and_write_back_are_exact():
    m = _model(1)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)["R"]
    swaps = prepare_qat(m)
    assert len(swaps) == 20 and not any(isinstance(b, torch.nn.BatchNorm2d) for b in m.backbone.modules())
    convert_back(swaps)
    assert not any(isinstance(c, FakeQuantConv) for c in m.modules())
    with torch.no_grad():
        assert torch.allclose(m(x)["R"], ref, atol=1e-5)


def test_fake_quant_conv_grid_and_straight_through():
    conv, bn = torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.BatchNorm2d(6).eval()
    fq = FakeQuantConv(conv, bn)
    x = torch.randn(2, 4, 8, 8)
    fq(x)  # calibration pass records max |x|
    assert float(fq.act_amax) == pytest.approx(float(x.abs().max()))
    fq.calibrating = False
    s = fq.weight_scale()
    wq = torch.fake_quantize_per_channel_affine(fq.weight, s, torch.zeros(6, dtype=torch.int32), 0, -127, 127)
    assert float(((wq - fq.weight).detach().abs() / s.view(-1, 1, 1, 1)).max()) <= 0.5 + 1e-4  # round to nearest
    assert len(torch.unique(torch.round(wq[0] / s[0]))) <= 255
    xr = x.clone().requires_grad_(True)
    fq(xr).sum().backward()
    assert xr.grad is not None and fq.weight.grad is not None and float(fq.weight.grad.abs().sum()) > 0
    ref = torch.nn.functional.conv2d(x, fq.weight, fq.bias, padding=1)
    rel = float((fq(x) - ref).norm() / ref.norm())
    assert 0 < rel < 0.05  # INT8 noise: present but small


def test_qat_finetune_export_and_tensorrt_lint(tmp_path, crops):
    from edgepose.export import export_onnx
    from edgepose.quantize.lint import lint_qdq
    from edgepose.quantize.ptq import quantize_onnx

    m = _model(2)
    with torch.no_grad():
        before = m(torch.from_numpy(crops[:4]))["R"]
    summ = qat_finetune(m, crops, steps=4, batch_size=4, lr=1e-4, calib_batches=2, progress=False)
    assert summ["layers"] == 20 and np.isfinite(summ["loss_last"])
    assert not any(isinstance(c, FakeQuantConv) for c in m.modules())  # a normal model again
    with torch.no_grad():
        after = m(torch.from_numpy(crops[:4]))["R"]
    assert float((after - before).abs().max()) > 0  # fine-tuned ...
    eye = torch.eye(3).expand(4, 3, 3)
    assert torch.allclose(after @ after.transpose(1, 2), eye, atol=1e-4)  # ... and still a rotation model
    path = export_onnx(m, tmp_path / "qat.onnx", command="test").path
    res = quantize_onnx(path, tmp_path / "qat-trt.onnx", crops, "tensorrt", command="test")
    assert lint_qdq(str(res.path)) == []
    with pytest.raises(UserError, match="steps"):
        qat_finetune(m, crops, steps=0)
    with pytest.raises(UserError, match="non-empty"):
        qat_finetune(m, crops[:0], steps=1)


def test_pre_process_avoids_symbolic_shape_crash(fp32, crops, tmp_path):
    """The 6D head's ReduceL2 (axes as input, opset 18) breaks ORT's symbolic shape inference."""
    from edgepose.metadata import load_metadata
    from edgepose.quantize.ptq import pre_process, quantize_onnx

    assert any(n.op_type == "ReduceL2" for n in onnx.load(str(fp32)).graph.node)
    assert pre_process(fp32, tmp_path / "pre.onnx") == "onnx-shapes"
    pre = onnx.load(str(tmp_path / "pre.onnx"))
    assert not any(n.op_type == "BatchNormalization" for n in pre.graph.node)
    res = quantize_onnx(fp32, tmp_path / "t.onnx", crops, "tensorrt", command="test")
    assert load_metadata(res.path).extra["quantization"]["pre_process"] == "onnx-shapes"


def test_layer_groups_and_float_exclusion(fp32, crops, tmp_path):
    from edgepose.quantize.graph import head_node_names
    from edgepose.quantize.lint import lint_qdq
    from edgepose.quantize.ptq import pre_process, quantize_onnx
    from edgepose.quantize.sweep import layer_groups

    pre_process(fp32, tmp_path / "pre.onnx")
    graph = onnx.load(str(tmp_path / "pre.onnx")).graph
    groups = layer_groups(graph)
    assert list(groups)[0] == "model.backbone.conv1" and len(groups) == 9  # stem + 8 basic blocks
    names = [n for g in groups.values() for n in g]
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    assert len(names) == len(set(names)) and set(convs) <= set(names)
    assert not set(names) & set(head_node_names(graph))
    stem = groups["model.backbone.conv1"]
    res = quantize_onnx(fp32, tmp_path / "x.onnx", crops, "tensorrt", exclude=stem, command="test")
    q = onnx.load(str(res.path))
    prods = {o: n for n in q.graph.node for o in n.output}
    first = next(n for n in q.graph.node if n.op_type == "Conv" and n.name == stem[0])
    assert first.input[1] not in prods or prods[first.input[1]].op_type != "DequantizeLinear"  # float weights
    assert lint_qdq(q) == []
    with pytest.raises(UserError, match="not in the pre-processed graph"):
        quantize_onnx(fp32, tmp_path / "y.onnx", crops, "tensorrt", exclude=["no_such_node"])


def test_cli_qat_errors(fp32, tmp_path, capsys):
    from edgepose.cli.main import main

    assert main(["quantize", str(fp32), "--calib", str(tmp_path), "--qat", str(tmp_path / "none.pt")]) == 2
    assert "--qat checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # validated while parsing (argparse exits 2)
        main(["quantize", str(fp32), "--calib", str(tmp_path), "--qat", str(fp32.with_suffix(".pt")),
              "--qat-steps", "0"])
    assert exc.value.code == 2
    assert "--qat-steps" in capsys.readouterr().err
