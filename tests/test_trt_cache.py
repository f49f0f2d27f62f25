"""Build options, optimisation profiles, engine cache keys and paths, ONNX precision checks (no TensorRT)."""
from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from edgepose.errors import UserError  # noqa: E402
from edgepose.jetson.build import check_onnx_precision, fp16_route, onnx_input, onnx_quantization  # noqa: E402
from edgepose.jetson.cache import DeviceId, EngineKey, engine_path, timing_cache_path  # noqa: E402
from edgepose.jetson.options import BuildOptions, BuildOptionsError, ProfileShapes  # noqa: E402
from edgepose.jetson.platform import TrtVersion  # noqa: E402

ORIN = DeviceId("Orin", "8.7")
SHAPE = (None, 3, 112, 112)


def key(**changes) -> EngineKey:
    base = dict(onnx_sha256="a" * 64, trt_version="10.3.0", device=ORIN, options=BuildOptions(),
                profile=BuildOptions().profile(SHAPE), fp16_route="builder-flag")
    base.update(changes)
    return EngineKey(**base)


def test_profile_dynamic_batch():
    p = BuildOptions(max_batch=8, opt_batch=2).profile(SHAPE)
    assert p == ProfileShapes(min=(1, 3, 112, 112), opt=(2, 3, 112, 112), max=(8, 3, 112, 112))
    assert p.as_dict()["max"] == [8, 3, 112, 112]


def test_profile_errors():
    with pytest.raises(BuildOptionsError, match="only the batch axis"):
        BuildOptions().profile((None, 3, None, None))
    with pytest.raises(BuildOptionsError, match="4-D"):
        BuildOptions().profile((None, 3, 112))
    with pytest.raises(BuildOptionsError, match="fixed batch of 1"):
        BuildOptions(max_batch=8).profile((1, 3, 112, 112))
    # a fixed-batch ONNX works with a matching static profile
    p = BuildOptions(max_batch=1, opt_batch=1).profile((1, 3, 112, 112))
    assert p.min == p.opt == p.max == (1, 3, 112, 112)


@pytest.mark.parametrize("kw,match", [
    (dict(precision="bf16"), "precision"),
    (dict(opt_batch=9, max_batch=8), "opt"),
    (dict(min_batch=0), "1 <= min"),
    (dict(workspace_mb=1), "workspace"),
    (dict(opt_level=7), "opt-level"),
    (dict(gpu_fallback=True), "only makes sense with --dla-core"),
    (dict(dla_core=0, precision="fp16"), "static batch"),
    (dict(dla_core=0, precision="fp32", max_batch=1), "FP16 and INT8 only"),
])
def test_build_option_errors(kw, match):
    with pytest.raises(BuildOptionsError, match=match):
        BuildOptions(**kw)
    assert issubclass(BuildOptionsError, UserError)


def test_dla_options_are_static():
    o = BuildOptions.for_dla("fp16", batch=4, core=1)
    assert o.min_batch == o.opt_batch == o.max_batch == 4 and o.gpu_fallback and o.device_kind == "dla1"
    p = o.profile(SHAPE)
    assert p.min == p.opt == p.max


def test_key_is_deterministic():
    assert key().digest() == key().digest()
    assert len(key().digest()) == 24


@pytest.mark.parametrize("change", [
    dict(onnx_sha256="b" * 64),
    dict(trt_version="10.3.1"),
    dict(trt_version="11.4.1"),
    dict(device=DeviceId("Orin", "8.6")),
    dict(device=DeviceId("NVIDIA H100", "8.7")),
    dict(options=BuildOptions(precision="int8")),
    dict(options=BuildOptions(precision="fp32")),
    dict(options=BuildOptions(workspace_mb=2048)),
    dict(options=BuildOptions(opt_level=5)),
    dict(options=BuildOptions(opt_batch=2)),
    dict(profile=BuildOptions(max_batch=16).profile(SHAPE)),
    dict(profile=BuildOptions().profile((None, 3, 128, 128))),
    dict(fp16_route="onnx"),
    dict(options=BuildOptions.for_dla("fp16", 1, 0), profile=BuildOptions.for_dla("fp16", 1, 0).profile(SHAPE)),
])
def test_every_component_changes_the_key(change):
    assert key(**change).digest() != key().digest()


def test_dla_core_and_fallback_change_the_key():
    a = BuildOptions.for_dla("fp16", 1, 0)
    keys = {key(options=o, profile=o.profile(SHAPE)).digest()
            for o in (a, dataclasses.replace(a, dla_core=1), dataclasses.replace(a, gpu_fallback=False))}
    assert len(keys) == 3


def test_paths(tmp_path):
    k = key()
    p = engine_path(tmp_path, tmp_path / "My Model.onnx", k)
    assert p.parent == tmp_path / "engines" and p.suffix == ".plan"
    assert p.name == f"my-model.fp16.gpu.{k.digest()}.plan"
    t = timing_cache_path(tmp_path, ORIN, "10.3.0")
    assert t == tmp_path / "timing" / "orin-sm8-7.trt10-3-0.timing"
    assert timing_cache_path(tmp_path, DeviceId("Orin", "8.7"), "11.4.1") != t


def test_fp16_route_by_version():
    assert fp16_route(TrtVersion.parse("10.3.0"), "fp16") == "builder-flag"
    assert fp16_route(TrtVersion.parse("11.4.1"), "fp16") == "onnx"
    assert fp16_route(TrtVersion.parse("11.4.1"), "int8") == "none"
    # an ONNX converted to FP16 already is built strongly typed as it is, on both versions
    assert fp16_route(TrtVersion.parse("10.3.0"), "fp16", onnx_is_fp16=True) == "onnx"


def _tiny_onnx(path, qdq: bool, batch="N"):
    """A 1x1 conv model; with qdq=True the weights go through Q/DQ as TensorRT's explicit INT8 expects."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], np.ones(6, np.float32))
    nodes, inits = [], [w]
    x = "input"
    if qdq:
        inits += [helper.make_tensor("s", TensorProto.FLOAT, [], [0.02]),
                  helper.make_tensor("z", TensorProto.INT8, [], [0])]
        nodes += [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        x = "xd"
    nodes.append(helper.make_node("Conv", [x, "w"], ["out"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 8, 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 2, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def test_onnx_inspection_and_precision_checks(tmp_path):
    fp32 = _tiny_onnx(tmp_path / "fp32.onnx", qdq=False)
    q = _tiny_onnx(tmp_path / "q.onnx", qdq=True)
    assert onnx_input(fp32) == ("input", (None, 3, 8, 8))
    assert onnx_input(_tiny_onnx(tmp_path / "b1.onnx", False, batch=1))[1] == (1, 3, 8, 8)
    assert onnx_quantization(fp32) == "fp32" and onnx_quantization(q) == "qdq"
    check_onnx_precision(fp32, "fp32")
    check_onnx_precision(fp32, "fp16")
    check_onnx_precision(q, "int8")
    with pytest.raises(BuildOptionsError, match="edgepose quantize"):
        check_onnx_precision(fp32, "int8")
    with pytest.raises(BuildOptionsError, match="--precision int8"):
        check_onnx_precision(q, "fp16")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_build_without_tensorrt_is_a_clear_error(tmp_path):
    from edgepose.errors import DependencyError
    from edgepose.jetson.build import build_engine

    fp32 = _tiny_onnx(tmp_path / "m.onnx", qdq=False)
    with pytest.raises(DependencyError, match="tensorrt"):
        build_engine(fp32, BuildOptions(), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing half-written


def test_cli_engine_errors(tmp_path, capsys):
    from edgepose.cli.main import main

    assert main(["engine", "build", str(tmp_path / "missing.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
    fp32 = _tiny_onnx(tmp_path / "m.onnx", qdq=False)
    assert main(["engine", "build", str(fp32), "--precision", "int8"]) == 2
    assert "Q/DQ" in capsys.readouterr().err
    assert main(["engine", "build", str(fp32), "--dla-core", "0", "--precision", "fp32"]) == 2
    assert "FP16 and INT8 only" in capsys.readouterr().err
    assert main(["engine", "build", str(fp32), "--opt-batch", "9", "--max-batch", "8"]) == 2
