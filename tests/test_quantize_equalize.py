"""Activation equalization across ReLU (quantize.equalize): which tensors it touches, that the FP32 function stays
the same, that every channel of an equalized tensor ends with the tensor's range, and that INT8 gains from it."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgepose.errors import UserError  # noqa: E402
from edgepose.quantize.equalize import MAX_SCALE, channel_ranges, equalize_activations, find_equalizable  # noqa: E402
from edgepose.quantize.lint import lint_qdq  # noqa: E402
from edgepose.quantize.ptq import quantize_onnx  # noqa: E402

SIZE = 16


def _mobilenet_like(path):
    """stem -> relu r0 -> depthwise -> relu r1 -> 1x1 -> relu r2 -> add(r2, r0) -> 1x1 -> relu r3 -> mean -> Gemm.

    r1 (read by a dense 1x1 conv) and r3 (read by the float head through the pool) can be equalized; r0 and r2
    feed the residual Add, which cannot divide a channel scale, so they are left alone. The channels of r1 and r3
    get ranges spread over two decades, as trained convs give them."""
    from onnx import helper
    from onnx_graphs import save_pose_graph

    rng = np.random.default_rng(0)
    spread = lambda n: np.logspace(-1, 1, n)[rng.permutation(n)]  # noqa: E731 - per-channel gain
    init = {"w0": rng.standard_normal((8, 3, 3, 3)), "b0": 0.1 * rng.standard_normal(8),
            "wd": rng.standard_normal((8, 1, 3, 3)) * spread(8)[:, None, None, None], "bd": 0.1 * rng.standard_normal(8),
            "wp": 0.3 * rng.standard_normal((8, 8, 1, 1)),
            "wq": 0.3 * rng.standard_normal((16, 8, 1, 1)) * spread(16)[:, None, None, None],
            "bq": 0.1 * rng.standard_normal(16),
            "w6": 0.05 * rng.standard_normal((16, 6)), "b6": np.array([1, 0, 0, 0, 1, 0])}
    nodes = [helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
             helper.make_node("Conv", ["r0", "wd", "bd"], ["cd"], name="dw", pads=[1, 1, 1, 1], group=8),
             helper.make_node("Relu", ["cd"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "wp"], ["cp"], name="pw"),
             helper.make_node("Relu", ["cp"], ["r2"], name="relu2"),
             helper.make_node("Add", ["r2", "r0"], ["a"], name="residual"),
             helper.make_node("Conv", ["a", "wq", "bq"], ["cq"], name="pw2"),
             helper.make_node("Relu", ["cq"], ["r3"], name="relu3"),
             helper.make_node("ReduceMean", ["r3"], ["f"], name="pool", axes=[2, 3], keepdims=0),
             helper.make_node("Gemm", ["f", "w6", "b6"], ["sixd"], name="head")]
    return save_pose_graph(path, "mobilenet-like", nodes, init, SIZE)


def _chain(path):
    """stem -> relu r0 -> depthwise -> relu r1 -> 1x1 -> relu r2 -> mean -> Gemm, every conv's channels spread over
    two decades: all three ReLU outputs can be equalized (r0 for free, r1 against the 1x1's weights)."""
    from onnx import helper
    from onnx_graphs import save_pose_graph

    rng = np.random.default_rng(4)
    spread = lambda n: np.logspace(-1, 1, n)[rng.permutation(n)][:, None, None, None]  # noqa: E731
    init = {"w0": rng.standard_normal((8, 3, 3, 3)) * spread(8), "wd": rng.standard_normal((8, 1, 3, 3)) * spread(8),
            "wp": 0.3 * rng.standard_normal((16, 8, 1, 1)) * spread(16),
            "w6": 0.05 * rng.standard_normal((6, 16)), "b6": np.array([1, 0, 0, 0, 1, 0])}
    nodes = [helper.make_node("Conv", ["input", "w0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
             helper.make_node("Conv", ["r0", "wd"], ["cd"], name="dw", pads=[1, 1, 1, 1], group=8),
             helper.make_node("Relu", ["cd"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "wp"], ["cp"], name="pw"),
             helper.make_node("Relu", ["cp"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w6", "b6"], ["sixd"], name="head", transB=1)]
    return save_pose_graph(path, "chain", nodes, init, SIZE)


def _crops(n=32, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_only_chains_whose_consumers_absorb_a_channel_scale_are_found(tmp_path):
    found = {t.tensor: t for t in find_equalizable(onnx.load(str(_mobilenet_like(tmp_path / "m.onnx"))))}
    assert set(found) == {"r1", "r3"}
    assert found["r1"].dense_consumer and found["r1"].absorbers == [("pw", "wp", 1, 1)]
    assert not found["r3"].dense_consumer and found["r3"].absorbers == [("head", "w6", 0, 1)]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_the_fp32_function_is_unchanged_and_ranges_are_equalized(tmp_path, alpha):
    src = _mobilenet_like(tmp_path / "m.onnx")
    crops = _crops()
    res = equalize_activations(src, tmp_path / "eq.onnx", crops, alpha=alpha)
    x = _crops(8, seed=5)  # other inputs than the calibration crops
    assert np.allclose(_run(res.path, x), _run(src, x), rtol=1e-4, atol=1e-5)
    before = channel_ranges(onnx.load(str(src)), ["r1", "r3"], crops, "input")
    after = channel_ranges(onnx.load(str(res.path)), ["r1", "r3"], crops, "input")
    full = lambda r: r * np.minimum(r.max() / r, MAX_SCALE)  # noqa: E731 - each channel at the largest range, capped
    # the free tensor (before the float head) always ends with every channel at the tensor's largest range
    assert np.allclose(after["r3"], full(before["r3"]), rtol=1e-4)
    assert before["r3"].max() / before["r3"].min() > 3  # so the line above checks something
    # before the dense conv the strength decides: 0 leaves it, 1 equalizes it, 0.5 narrows the spread
    spread = lambda r: r.max() / r.min()  # noqa: E731
    if alpha == 0.0:
        assert np.allclose(after["r1"], before["r1"], rtol=1e-5)
    elif alpha == 1.0:
        assert np.allclose(after["r1"], full(before["r1"]), rtol=1e-4)
    else:
        assert 1.0 < spread(after["r1"]) < spread(before["r1"])
    assert {t.tensor for t in res.tensors} == ({"r3"} if alpha == 0.0 else {"r1", "r3"})


def test_equalized_int8_stays_closer_to_fp32_and_records_it(tmp_path):
    """The point of it: with channel ranges spread over two decades, per-tensor INT8 steps are coarse for the small
    channels; equalized, the same quantizer lands closer to the FP32 answer (both profiles)."""
    src = _chain(tmp_path / "m.onnx")
    assert {t.tensor for t in find_equalizable(onnx.load(str(src)))} == {"r0", "r1", "r2"}
    crops = _crops(64)
    x = _crops(32, seed=9)
    ref = _run(src, x)
    for prof in ("cpu", "tensorrt"):
        plain = quantize_onnx(src, tmp_path / f"plain-{prof}.onnx", crops, prof, command="test", reduce_range="off")
        eq = quantize_onnx(src, tmp_path / f"eq-{prof}.onnx", crops, prof, command="test", reduce_range="off",
                           equalize=1.0)
        err = {k: np.abs(_run(r.path, x) - ref).mean() for k, r in (("plain", plain), ("eq", eq))}
        assert err["eq"] < 0.8 * err["plain"], (prof, err)
        q = eq.metadata.extra["quantization"]
        assert q["equalization"]["alpha"] == 1.0 and {t["tensor"] for t in q["equalization"]["tensors"]} == {"r0", "r1", "r2"}
        assert plain.metadata.extra["quantization"]["equalization"] is None
        assert "equalized" in eq.summary()
        if prof == "tensorrt":
            assert lint_qdq(onnx.load(str(eq.path))) == []


def test_bad_strength_and_overwriting_are_refused(tmp_path):
    src = _mobilenet_like(tmp_path / "m.onnx")
    with pytest.raises(UserError, match=r"outside \[0, 1\]"):
        equalize_activations(src, tmp_path / "eq.onnx", _crops(), alpha=1.5)
    with pytest.raises(UserError, match="overwrite"):
        equalize_activations(src, src, _crops(), alpha=0.5)


def test_cli_refuses_a_bad_strength_before_loading_anything(tmp_path, capsys):
    from edgepose.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["quantize", str(tmp_path / "missing.onnx"), "--calib", str(tmp_path), "--equalize", "2"])
    assert exc.value.code == 2 and "must be in [0, 1] or 'off'" in capsys.readouterr().err


def test_build_refuses_a_bad_strength_before_training(tmp_path):
    from edgepose.assets.build import build

    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"out_dir: {tmp_path / 'out'}\nquant_equalize: 2.0\n")
    with pytest.raises(UserError, match="quant_equalize=2.0"):
        build(cfg, data_root=tmp_path)


def test_a_float16_stored_weight_is_left_alone(tmp_path):
    """A weight stored as float16 behind a Cast (the shipped FP32 file's weight storage) is neither rewritten nor
    treated as an absorber: only the chain around float32 weights remains (quantize_onnx's pre-processing folds
    such Casts before equalizing, so it sees float32 weights)."""
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(_chain(tmp_path / "m.onnx")))
    g = model.graph
    wp = next(t for t in g.initializer if t.name == "wp")
    half = numpy_helper.from_array(numpy_helper.to_array(wp).astype(np.float16), "wp_half")
    g.initializer.remove(wp)
    g.initializer.append(half)
    g.node.insert(0, helper.make_node("Cast", ["wp_half"], ["wp"], name="cast_wp", to=TensorProto.FLOAT))
    assert {t.tensor for t in find_equalizable(model)} == {"r0"}  # r1's reader and r2's producer use "wp"


def test_the_report_says_which_int8_file_was_equalized(tmp_path):
    from edgepose.quantize.report import build_report, format_markdown

    src = _chain(tmp_path / "m.onnx")
    crops = _crops(16)
    plain = quantize_onnx(src, tmp_path / "plain.onnx", crops, "cpu", command="test", reduce_range="off")
    eq = quantize_onnx(src, tmp_path / "eq.onnx", crops, "cpu", command="test", reduce_range="off", equalize=0.5)
    rep = build_report({"fp32": src, "int8-plain": plain.path, "int8-eq": eq.path}, None, None, crops[:1], runs=2,
                       threads=1)
    assert rep["models"]["int8-eq"]["quantization"]["equalize"] == 0.5
    assert rep["models"]["int8-plain"]["quantization"]["equalize"] is None
    lines = {ln.split(":")[0]: ln for ln in format_markdown(rep).splitlines() if ln.startswith("- int8-")}
    assert "activations equalized (alpha 0.5)" in lines["- int8-eq"]
    assert "equalized" not in lines["- int8-plain"]


def test_a_misread_pattern_stops_with_one_line_and_writes_no_int8_file(tmp_path, monkeypatch):
    """The parity guard: if a chain were misread (here: the 1x1 conv reading r1 is forgotten, so r1's scale is never
    divided back), the FP32 answer would change, and quantizing stops with an error naming --equalize off before any
    file exists."""
    from edgepose.errors import ModelError
    from edgepose.quantize import equalize as eq_mod

    real_find = eq_mod.find_equalizable

    def misread(model):
        found = real_find(model)
        for t in found:
            t.absorbers = [a for a in t.absorbers if a[1] != "wp"]
        return found

    monkeypatch.setattr(eq_mod, "find_equalizable", misread)
    src = _chain(tmp_path / "m.onnx")
    out = tmp_path / "m-cpu.onnx"
    with pytest.raises(ModelError, match=r"changed the FP32 answer .*--equalize off"):
        quantize_onnx(src, out, _crops(), "cpu", command="test", reduce_range="off", equalize=1.0)
    assert not out.exists() and not (tmp_path / "m-cpu.onnx.json").exists()
