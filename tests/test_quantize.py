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
    drift = quantized["cpu"].drift
    assert row["quantization"]["int8_drift"] == drift
    assert f"{drift['fused_vs_fp32_deg']:.2f} deg as ORT CPU runs it" in md.read_text()


def test_cli_errors(tmp_path, capsys, fp32):
    from edgepose.cli.main import main

    assert main(["quantize", str(tmp_path / "none.onnx"), "--calib", str(tmp_path)]) == 2
    assert "model not found" in capsys.readouterr().err
    assert main(["quantize", str(fp32), "--calib", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["quantize", str(fp32), "--calib", str(tmp_path), "--profiles", "gpu"]) == 2
    assert "unknown INT8 profile" in capsys.readouterr().err


# -- reduce_range (U8S8 saturation on x86 without VNNI), method case, provenance, bench script data ---------

_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma{extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma{extra}
"""


def test_cpu_has_vnni_from_cpuinfo_text():
    from edgepose.quantize.profiles import cpu_has_vnni

    assert cpu_has_vnni(_CPUINFO.format(extra=""), machine="x86_64") is False  # AVX2 only
    assert cpu_has_vnni(_CPUINFO.format(extra=" avx512f avx512bw"), machine="x86_64") is False  # AVX-512, no VNNI
    assert cpu_has_vnni(_CPUINFO.format(extra=" avx512f avx512_vnni"), machine="x86_64") is True
    assert cpu_has_vnni(_CPUINFO.format(extra=" avx_vnni"), machine="AMD64") is True
    assert cpu_has_vnni("processor: 0\nFeatures: fp asimd asimddp\n", machine="aarch64") is None  # not x86
    assert cpu_has_vnni("processor: 0\nmodel name: x\n", machine="x86_64") is None  # no flags: unknown
    # "vnni" inside another word must not count
    assert cpu_has_vnni(_CPUINFO.format(extra=" avx512_vnni_like"), machine="x86_64") is False


def test_resolve_reduce_range_rules():
    from edgepose.quantize.profiles import get_profile, resolve_reduce_range

    cpu, trt = get_profile("cpu"), get_profile("tensorrt")
    assert resolve_reduce_range(cpu, "auto", has_vnni=False)[0] is True
    assert resolve_reduce_range(cpu, "auto", has_vnni=True)[0] is False
    assert resolve_reduce_range(cpu, "auto", has_vnni=None)[0] is False  # non-x86 / unknown: off
    assert resolve_reduce_range(cpu, "off", has_vnni=False)[0] is False
    assert resolve_reduce_range(cpu, True, has_vnni=True)[0] is True
    assert resolve_reduce_range(trt, "auto", has_vnni=False)[0] is False  # TensorRT: never
    with pytest.raises(UserError, match="cpu profile only"):
        resolve_reduce_range(trt, "on")
    with pytest.raises(UserError, match="auto, on, off"):
        resolve_reduce_range(cpu, "maybe")


def _max_abs_int8_weight(path) -> int:
    """Largest |value| among the int8 weight initializers of a Q/DQ model."""
    from onnx import numpy_helper

    m = onnx.load(str(path))
    return max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max()) for t in m.graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4)  # conv weights


def test_reduce_range_reaches_quantize_static_and_sidecar(fp32, crops, quantized, tmp_path, monkeypatch):
    import onnxruntime.quantization as ortq

    from edgepose.quantize.profiles import get_profile, resolve_reduce_range

    seen = []
    real = ortq.quantize_static

    def spy(*a, **kw):
        seen.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(ortq, "quantize_static", spy)
    # "PERCENTILE": the method is lower-cased before the percentile option is added (was compared raw)
    res = quantize_onnx(fp32, tmp_path / "rr.onnx", crops, "cpu", method="PERCENTILE", percentile=99.9,
                        reduce_range="on", command="test")
    assert seen[-1]["reduce_range"] is True and seen[-1]["extra_options"]["CalibPercentile"] == 99.9
    q = res.metadata.extra["quantization"]
    assert q["reduce_range"] is True and q["method"] == "percentile" and q["percentile"] == 99.9
    assert _max_abs_int8_weight(res.path) <= 64  # 7-bit weights
    # the session's auto-mode cpu file: its sidecar matches this CPU's detection and its weights match the sidecar
    auto = quantized["cpu"].metadata.extra["quantization"]
    assert auto["reduce_range"] is resolve_reduce_range(get_profile("cpu"), "auto")[0] and auto["reduce_range_reason"]
    assert (_max_abs_int8_weight(quantized["cpu"].path) <= 64) is auto["reduce_range"]
    assert _max_abs_int8_weight(quantized["tensorrt"].path) == 127  # full range without reduce_range
    assert quantized["tensorrt"].metadata.extra["quantization"]["reduce_range"] is False


def test_cli_records_main_argv_and_reduce_range_flag(fp32, crops, tmp_path, monkeypatch, capsys):
    """`main([...])` from code: the provenance is that argv (sys.argv belongs to pytest here)."""
    import sys
    import types

    import edgepose.quantize.calibration as calibration
    from edgepose.cli.main import main

    fake = types.SimpleNamespace(crops=crops, manifest={"files": [], "faces": len(crops)})
    monkeypatch.setattr(calibration, "build_calibration_set", lambda *a, **kw: fake)  # no detector needed
    monkeypatch.setattr(sys, "argv", ["pytest", "something", "else"])
    argv = ["quantize", str(fp32), "--calib", str(tmp_path), "--profiles", "cpu", "--reduce-range", "off",
            "--no-report", "-o", str(tmp_path / "o")]
    assert main(argv) == 0
    meta = json.loads((tmp_path / "o" / "m-int8-cpu.onnx.json").read_text())
    assert meta["provenance"]["command"] == "edgepose " + " ".join(argv)
    assert meta["extra"]["quantization"]["reduce_range"] is False
    assert main(["quantize", str(fp32), "--calib", str(tmp_path), "--profiles", "tensorrt",
                 "--reduce-range", "on"]) == 2
    assert "cpu profile" in capsys.readouterr().err


def test_command_line_without_main(fp32):
    """run() called directly (no argv from main): an equivalent command is rebuilt from the options."""
    import argparse

    from edgepose.cli import quantize as cli_quantize

    p = argparse.ArgumentParser()
    cli_quantize.add_arguments(p)
    args = p.parse_args([str(fp32), "--calib", "a dir", "--calib", "b.mp4", "--eval", "aflw2000:/x", "--no-report"])
    cmd = cli_quantize.command_line(args)
    assert cmd.startswith(f"edgepose quantize {fp32}") and "--calib 'a dir' --calib b.mp4" in cmd
    assert "--eval aflw2000:/x" in cmd and "--no-report" in cmd
    assert p.parse_args(__import__("shlex").split(cmd)[2:]) == args  # it parses back to the same options


def test_bench_compression_data_folder(tmp_path):
    from edgepose.cli.bench_compression import DATA_ENV, data_dir
    from edgepose.errors import UserError

    with pytest.raises(UserError, match=f"--data .* or set {DATA_ENV}"):
        data_dir(None, env={})
    assert data_dir(None, env={DATA_ENV: str(tmp_path)}) == tmp_path
    assert data_dir(str(tmp_path), env={DATA_ENV: "/elsewhere"}) == tmp_path  # the flag wins
    with pytest.raises(UserError, match=f"{DATA_ENV} .*missing is not a folder"):
        data_dir(None, env={DATA_ENV: str(tmp_path / "missing")})


def test_int8_drift_is_measured_recorded_and_independent(fp32, quantized, crops):
    """Every INT8 file records how far it moves the rotation from FP32, as ORT CPU runs it (fused) and as
    its Q/DQ arithmetic says (fusion off); recomputed here from three independent sessions."""
    import onnxruntime as ort

    from edgepose.geometry import geodesic_distance
    from edgepose.metadata import load_metadata
    from edgepose.quantize.kernel_check import FUSION_TRANSFORMER

    def run(p, disabled=()):
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled))
        return s.run(["rotation"], {"input": crops})[0].astype(np.float64)

    ref = run(fp32)
    for prof, res in quantized.items():
        drift = load_metadata(res.path).extra["quantization"]["int8_drift"]
        assert drift == res.drift and drift["crops"] == len(crops)
        fused, qdq = run(res.path), run(res.path, [FUSION_TRANSFORMER])
        assert drift["fused_vs_fp32_deg"] == pytest.approx(geodesic_distance(fused, ref).mean(), abs=0.05), prof
        assert drift["qdq_vs_fp32_deg"] == pytest.approx(geodesic_distance(qdq, ref).mean(), abs=0.05), prof
        assert drift["fused_vs_qdq_deg"] == pytest.approx(geodesic_distance(fused, qdq).mean(), abs=0.05), prof
        assert "from FP32 on ORT CPU" in res.summary()


def test_drift_problems_flag_fusion_damage_and_lossy_int8(caplog):
    from edgepose.quantize.kernel_check import drift_problems, warn_drift

    def d(fused, qdq):
        return {"crops": 16, "fused_vs_fp32_deg": fused, "qdq_vs_fp32_deg": qdq, "fused_vs_qdq_deg": abs(fused - qdq)}

    assert drift_problems(None) == [] and drift_problems(d(2.7, 1.7)) == []  # a step of rounding is normal
    assert len(drift_problems(d(15.9, 4.0))) == 1 and "fused" in drift_problems(d(15.9, 4.0))[0]
    assert len(drift_problems(d(10.4, 10.1))) == 1 and "itself" in drift_problems(d(10.4, 10.1))[0]
    assert len(drift_problems(d(15.9, 10.1))) == 2
    with caplog.at_level("WARNING"):
        assert warn_drift(d(15.9, 4.0), "w.onnx", "cpu") is True
        assert "tensorrt-profile" in caplog.text and "w.onnx" in caplog.text
        caplog.clear()
        assert warn_drift(d(15.9, 10.1), "w.onnx", "cpu") is True
        assert "tensorrt-profile" not in caplog.text  # lossy Q/DQ arithmetic: FP32 only
        caplog.clear()
        assert warn_drift(d(10.4, 10.1), "w.onnx", "tensorrt") is True and "FP16 engine" in caplog.text
        assert warn_drift(d(1.0, 0.9), "w.onnx", "cpu") is False


def test_histogram_calibration_on_identical_crops_names_the_fix(tmp_path):
    """Four copies of one crop leave quantized tensors without spread: the histogram methods cannot bin
    them, and the error says so and what to do instead of ORT's "Too many bins for data range"."""
    import numpy as np
    import torch

    from edgepose.errors import ModelError
    from edgepose.export import export_onnx
    from edgepose.models.pose_model import PoseModel
    from edgepose.quantize.ptq import quantize_onnx

    torch.manual_seed(0)
    export_onnx(PoseModel.build("mobilenetv3_small_075", input_size=64).eval(), tmp_path / "m.onnx", command="test")
    crops = np.repeat(np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32), 4, 0)
    with pytest.raises(ModelError, match=r"percentile calibration .* nearly constant.*more varied.*minmax"):
        quantize_onnx(tmp_path / "m.onnx", tmp_path / "q.onnx", crops, profile="tensorrt", method="percentile",
                      command="test")
    assert not (tmp_path / "q.onnx").exists()
