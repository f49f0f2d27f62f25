"""INT8 PTQ: profiles, head exclusion, the TensorRT Q/DQ lint (incl. broken models), calibration
reader + manifest, report, and CLI error paths.  One small ResNet-18 @ 64 px export per session."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgepose.errors import ModelError, UserError  # noqa: E402
from edgepose.quantize.calibration import CropCalibrationReader  # noqa: E402
from edgepose.quantize.graph import find_feature_pool, head_node_names  # noqa: E402
from edgepose.quantize.lint import QDQLintError, check_tensorrt_qdq, lint_qdq  # noqa: E402
from edgepose.quantize.ptq import quantize_onnx  # noqa: E402


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    from edgepose.export import export_onnx
    from edgepose.models import create_model

    d = tmp_path_factory.mktemp("q")
    model = create_model("resnet18", head="6d", input_size=64)
    export_onnx(model, d / "m.onnx", command="test")
    return d / "m.onnx"


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def quantized(fp32, crops):
    out = {}
    for prof in ("tensorrt", "cpu"):
        out[prof] = quantize_onnx(fp32, fp32.with_name(f"m-{prof}.onnx"), crops, prof, manifest={"files": []},
                                  command="test")
    return out


def test_head_is_everything_after_pooled_features(fp32):
    g = onnx.load(str(fp32)).graph
    pool = find_feature_pool(g)
    assert pool.op_type in ("ReduceMean", "GlobalAveragePool")
    head = set(head_node_names(g))
    by_name = {n.name: n for n in g.node}
    assert not any(by_name[h].op_type == "Conv" for h in head)
    assert any(by_name[h].op_type == "Gemm" for h in head)  # the 6D layer
    assert {"rotation", "euler"} <= {o for h in head for o in by_name[h].output}  # decode is in the head


def test_tensorrt_profile_passes_lint_and_keeps_head_float(quantized):
    res = quantized["tensorrt"]
    m = onnx.load(str(res.path))
    assert lint_qdq(m) == []
    assert res.num_q > 10 and res.num_dq > res.num_q - 1
    # no int32 bias DQ and no quantized head weight
    inits = {t.name for t in m.graph.initializer}
    gemm = [n for n in m.graph.node if n.op_type == "Gemm"]
    assert gemm and all(n.input[1] in inits for n in gemm)  # float weight straight from the initializer
    meta = json.loads(res.path.with_name(res.path.name + ".json").read_text())
    assert meta["precision"] == "int8-tensorrt" and meta["extra"]["quantization"]["extra_options"]["QuantizeBias"] is False
    assert res.path.with_name(res.path.name + ".calib.json").is_file()


def test_lint_catches_cpu_profile_model(quantized):
    v = lint_qdq(str(quantized["cpu"].path))
    rules = {x.rule for x in v}
    assert {"zero-point", "int8"} <= rules
    with pytest.raises(QDQLintError) as exc:
        check_tensorrt_qdq(str(quantized["cpu"].path))
    assert "zero point" in str(exc.value) and isinstance(exc.value, UserError)


def test_lint_catches_float_model_per_tensor_and_bias(fp32, crops, tmp_path):
    assert {x.rule for x in lint_qdq(str(fp32))} == {"no-qdq"}
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    bad = tmp_path / "bad.onnx"  # per-tensor weights, quantized bias, quantized head
    quantize_static(str(fp32), str(bad), CropCalibrationReader(crops), quant_format=QuantFormat.QDQ, per_channel=False,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    rules = {x.rule for x in lint_qdq(str(bad))}
    assert {"per-channel", "bias", "head"} <= rules


def test_lint_catches_low_opset(quantized, tmp_path):
    m = onnx.load(str(quantized["tensorrt"].path))
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 12
    assert "opset" in {x.rule for x in lint_qdq(m)}


def test_int8_outputs_close_to_fp32(fp32, quantized, crops):
    import onnxruntime as ort

    from edgepose.geometry import geodesic_distance

    def run(p):
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        return s.run(["rotation"], {"input": crops})[0].astype(np.float64)

    ref = run(fp32)
    for prof, res in quantized.items():
        R = run(res.path)
        assert np.allclose(np.einsum("nij,nkj->nik", R, R), np.eye(3), atol=1e-4)  # Gram-Schmidt stayed float
        assert geodesic_distance(R, ref).mean() < 20.0, prof  # random weights: loose, but not garbage


def test_calibration_reader_batches_and_rewinds(crops):
    r = CropCalibrationReader(crops, batch_size=3)
    sizes = []
    while (b := r.get_next()) is not None:
        sizes.append(b["input"].shape[0])
    assert sizes == [3, 3, 2] and len(r) == 3
    r.rewind()
    assert r.get_next()["input"].shape == (3, 3, 64, 64)
    with pytest.raises(UserError):
        CropCalibrationReader(np.zeros((0, 3, 8, 8), np.float32))


def test_quantize_errors(fp32, quantized, crops, tmp_path):
    with pytest.raises(ModelError, match="already"):
        quantize_onnx(quantized["cpu"].path, tmp_path / "x.onnx", crops, "cpu")
    with pytest.raises(UserError, match="profile"):
        quantize_onnx(fp32, tmp_path / "x.onnx", crops, "fpga")
    with pytest.raises(UserError, match="calibration method"):
        quantize_onnx(fp32, tmp_path / "x.onnx", crops, "cpu", method="kl")
    with pytest.raises(UserError, match="shape"):
        quantize_onnx(fp32, tmp_path / "x.onnx", crops[:, :, :32, :32], "cpu")
    with pytest.raises(UserError, match="overwrite"):
        quantize_onnx(fp32, fp32, crops, "cpu")
    with pytest.raises(ModelError, match="not found"):
        quantize_onnx(tmp_path / "none.onnx", tmp_path / "x.onnx", crops, "cpu")
    assert not (tmp_path / "x.onnx").exists()


def test_report_and_markdown(fp32, quantized, crops, tmp_path):
    from edgepose.quantize.report import build_report, format_markdown, write_report

    R_gt = np.repeat(np.eye(3)[None], len(crops), 0)
    rep = build_report({"fp32": fp32, "int8-cpu": quantized["cpu"].path}, crops, R_gt, crops[:1], runs=5, threads=1)
    row = rep["models"]["int8-cpu"]
    assert row["size_mb"] < rep["models"]["fp32"]["size_mb"] / 2.5  # int8 weights
    assert row["latency"]["median_ms"] > 0 and row["latency"]["p90_ms"] >= row["latency"]["median_ms"]
    assert set(row["delta_vs_fp32"]) == {"mae_pitch", "mae_yaw", "mae_roll", "mae", "ge"}
    js, md = write_report(rep, tmp_path / "r")
    assert json.loads(js.read_text())["models"]["fp32"]["precision"] == "fp32"
    assert "int8-cpu" in md.read_text() and format_markdown(rep).count("\n") >= 4


def test_cli_errors(tmp_path, capsys, fp32):
    from edgepose.cli.main import main

    assert main(["quantize", str(tmp_path / "none.onnx"), "--calib", str(tmp_path)]) == 2
    assert "model not found" in capsys.readouterr().err
    assert main(["quantize", str(fp32), "--calib", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["quantize", str(fp32), "--calib", str(tmp_path), "--profiles", "gpu"]) == 2
    assert "unknown INT8 profile" in capsys.readouterr().err
