"""FP32 files with float16 weight storage: half the bytes, the same float32 arithmetic, and a TensorRT path."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from edgepose.export import export_onnx
    from edgepose.models.pose_model import PoseModel
    from edgepose.preprocess import PreprocessSpec

    tmp = tmp_path_factory.mktemp("ws")
    model = PoseModel.build("mobilenet_v1_050", head="6d", preprocess=PreprocessSpec(input_size=64)).eval()
    path = tmp / "m.onnx"
    export_onnx(model, path, simplify=False)
    return path


def test_fp16_storage_halves_the_file_and_keeps_the_answers(exported, tmp_path):
    import onnx

    from edgepose.export.storage import write_fp16_storage_copy
    from edgepose.weight_storage import stores_fp16_weights
    from edgepose.metadata import load_metadata

    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    dst = tmp_path / "m16.onnx"
    info = write_fp16_storage_copy(exported, dst, x)
    assert dst.stat().st_size < 0.6 * exported.stat().st_size
    assert info["parity_vs_fp32_weights"]["rotation"] < 5e-3  # float16 weights, float32 arithmetic
    assert load_metadata(dst).extra["weight_storage"] == "float16"
    model = onnx.load(str(dst))
    assert stores_fp16_weights(model) and not stores_fp16_weights(onnx.load(str(exported)))
    onnx.checker.check_model(model)
    assert [i.elem_type for i in (model.graph.input[0].type.tensor_type,)] == [onnx.TensorProto.FLOAT]


def test_materialized_copy_is_a_plain_fp32_graph_for_tensorrt(exported, tmp_path):
    import onnx
    from onnx import numpy_helper

    from edgepose.weight_storage import store_weights_fp16
    from edgepose.jetson.build import materialized_fp32, onnx_quantization

    src = onnx.load(str(exported))
    path = tmp_path / "m16.onnx"
    onnx.save(store_weights_fp16(src), str(path))
    assert onnx_quantization(path) == "fp32"  # not mistaken for an FP16 model
    out = materialized_fp32(path, tmp_path / "cache" / "m.fp32.onnx")
    assert out != path
    back = onnx.load(str(out))
    assert all(i.data_type != onnx.TensorProto.FLOAT16 for i in back.graph.initializer)
    assert not any(n.op_type == "Cast" and n.input[0].endswith("__fp16_storage") for n in back.graph.node)
    orig = {i.name: numpy_helper.to_array(i) for i in src.graph.initializer}
    for init in back.graph.initializer:
        v = numpy_helper.to_array(init)
        np.testing.assert_allclose(v, orig[init.name].astype(np.float16).astype(np.float32) if v.size >= 1024
                                   else orig[init.name], rtol=0, atol=0)
    assert materialized_fp32(exported, tmp_path / "x.onnx") == exported  # an ordinary file goes as it is
