"""FP16 ONNX conversion (the TensorRT 11 FP16 route), checked in onnxruntime on the CPU."""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxconverter_common")
torch = pytest.importorskip("torch")

from edgepose import geometry  # noqa: E402
from edgepose.errors import ModelError  # noqa: E402
from edgepose.export import export_onnx  # noqa: E402
from edgepose.jetson.fp16 import convert_fp16, decode_tail_nodes  # noqa: E402
from edgepose.metadata import file_sha256, load_metadata  # noqa: E402
from edgepose.models import create_model  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    """A small 6D model re-initialised (Kaiming convs, larger head) so that its features are well
    inside the float16 range and the pose really depends on the input; the default
    initialisation of an untrained MobileNetV3 gives ~1e-9 features (below float16's range)."""
    torch.manual_seed(0)
    m = create_model("mobilenetv3_small", head="6d", input_size=SIZE).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
        m.head.fc.weight.mul_(20.0)
    path = tmp_path_factory.mktemp("fp16") / "pose.onnx"
    export_onnx(m, path, opset=17, max_batch=8, command="pytest fp16")
    return path


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))


def test_fp16_graph_structure(fp32_onnx, tmp_path):
    out = convert_fp16(fp32_onnx, tmp_path / "pose.fp16.onnx")
    m = onnx.load(str(out))
    onnx.checker.check_model(m)
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    # IO stays float32 so the runtime and DeepStream feed it unchanged
    assert [i.type.tensor_type.elem_type for i in m.graph.input] == [f32]
    assert {o.type.tensor_type.elem_type for o in m.graph.output} == {f32}
    inits = {i.name: i.data_type for i in m.graph.initializer}
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    conv_w = [i for n in m.graph.node if n.op_type == "Conv" for i in n.input[1:2]]
    assert conv_w and all(inits[w] == f16 for w in conv_w)  # the backbone really is half precision
    gemm_w = [n.input[1] for n in m.graph.node if n.op_type == "Gemm"]
    assert gemm_w and all(inits[w] == f32 for w in gemm_w)  # the head FC + decode stay float32
    # no float32 -> float16 -> float32 round trips left inside the decode tail
    producer = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type == "Cast" and n.attribute[0].i == f32:
            src = producer.get(n.input[0])
            assert src is None or not (src.op_type == "Cast" and src.attribute[0].i == f16)


def test_fp16_matches_fp32_in_onnxruntime(fp32_onnx, tmp_path):
    out = convert_fp16(fp32_onnx, tmp_path / "pose.fp16.onnx")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, SIZE, SIZE)).astype(np.float32)
    a, b = _run(fp32_onnx, x), _run(out, x)
    assert b["rotation"].dtype == np.float32
    # the comparison means something: different inputs give clearly different poses
    assert np.ptp(a["euler"], axis=0).max() > 5.0
    geo = geometry.geodesic_distance(a["rotation"].astype(np.float64), b["rotation"].astype(np.float64))
    assert np.abs(a["rotation"] - b["rotation"]).max() < 2e-2
    d = np.abs(a["euler"] - b["euler"])
    d = np.minimum(d, 360 - d)
    assert d.max() < 1.5  # degrees; FP16 backbone noise, decode in float32
    assert geo.max() < 1.5
    R = b["rotation"].astype(np.float64)
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-4)  # still a rotation (float32 Gram-Schmidt)


def test_fp16_sidecar_and_dynamic_batch(fp32_onnx, tmp_path):
    out = convert_fp16(fp32_onnx, tmp_path / "p16.onnx")
    meta = load_metadata(out)
    assert meta.precision == "fp16" and meta.format == "onnx"
    assert meta.provenance["parent_sha256"] == file_sha256(fp32_onnx) and meta.sha256 == file_sha256(out)
    for n in (1, 8):
        assert _run(out, np.zeros((n, 3, SIZE, SIZE), np.float32))["rotation"].shape == (n, 3, 3)


def test_tail_detection(fp32_onnx):
    m = onnx.load(str(fp32_onnx))
    tail = set(decode_tail_nodes(m.graph))
    ops = {n.op_type for n in m.graph.node if n.name in tail}
    assert "Gemm" in ops and "Conv" not in ops  # head FC and decode, never the backbone
    assert any(o in ops for o in ("Atan", "Atan2", "Div", "ReduceL2"))


def test_fp16_errors(fp32_onnx, tmp_path, capsys):
    with pytest.raises(ModelError, match="not found"):
        convert_fp16(tmp_path / "nope.onnx")
    once = convert_fp16(fp32_onnx, tmp_path / "once.onnx")
    with pytest.raises(ModelError, match="already holds float16"):
        convert_fp16(once, tmp_path / "twice.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot read"):
        convert_fp16(bad)
    from edgepose.cli.main import main

    assert main(["engine", "fp16", str(fp32_onnx), "-o", str(tmp_path / "cli.onnx")]) == 0
    assert (tmp_path / "cli.onnx").is_file() and (tmp_path / "cli.onnx.json").is_file()
    assert main(["engine", "fp16", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
