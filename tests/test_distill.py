"""Distillation: ensemble mean on SO(3), losses, config errors, and the CPU chain
teacher checkpoint -> distilled student -> FP32 ONNX -> INT8 (tensorrt + cpu) on real detector crops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgepose.config import ConfigError
from edgepose.distill.losses import DistillLoss, DistillLossConfig, bin_kl
from edgepose.distill.teacher import chordal_mean
from edgepose.errors import UserError
from edgepose.geometry_torch import euler_to_matrix, geodesic


def test_chordal_mean_of_rotations():
    R = euler_to_matrix(torch.tensor([[10.0, -20.0, 5.0], [40.0, 60.0, -30.0]]))
    assert torch.allclose(chordal_mean(torch.stack([R, R, R])), R, atol=1e-5)
    # symmetric spread about a yaw axis: the mean is the middle rotation
    a = euler_to_matrix(torch.tensor([[0.0, 10.0, 0.0]]))
    b = euler_to_matrix(torch.tensor([[0.0, 30.0, 0.0]]))
    mid = euler_to_matrix(torch.tensor([[0.0, 20.0, 0.0]]))
    M = chordal_mean(torch.stack([a, b]))
    assert float(geodesic(M, mid).max()) < 1e-3
    assert torch.allclose(torch.linalg.det(M), torch.ones(1), atol=1e-5)


def test_bin_kl_zero_for_same_distribution_positive_otherwise():
    logits = torch.randn(4, 66)
    assert float(bin_kl(logits, [logits], 2.0)) < 1e-6
    assert float(bin_kl(logits, [torch.randn(4, 66)], 2.0)) > 0.0


def test_loss_parts_and_errors():
    R = euler_to_matrix(torch.tensor([[0.0, 30.0, 0.0]] * 2))
    I = torch.eye(3).expand(2, 3, 3)
    loss = DistillLoss(DistillLossConfig(geodesic=1.0, gt=1.0, feature=1.0), 8, 16, {}, {})
    s = {"R": I, "features": torch.randn(2, 8)}
    t = {"R": R, "features": torch.randn(2, 16)}
    total, parts = loss(s, t, R, torch.tensor([True, False]))
    assert abs(parts["geodesic"] - np.radians(30)) < 1e-3 and abs(parts["gt"] - np.radians(30)) < 1e-3
    assert "feature" in parts and float(total.detach()) > parts["geodesic"]
    with pytest.raises(UserError, match="kl"):
        DistillLoss(DistillLossConfig(kl=1.0), 8, 16, {}, {"yaw": object()})
    with pytest.raises(UserError, match="temperature"):
        DistillLoss(DistillLossConfig(temperature=0), 8, 16, {}, {})


def test_config_errors(tmp_path):
    from edgepose.distill.trainer import load_distill_config

    with pytest.raises(ConfigError, match="data"):
        load_distill_config(None, [])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_distill_config(None, ["data.unlabelled=[x]", "studnet.name=resnet18"])
    with pytest.raises(ConfigError, match="input_size"):
        load_distill_config(None, ["data.unlabelled=[x]", "student.input_size=8"])


def test_cli_error_paths(tmp_path, capsys):
    from edgepose.cli.main import main

    assert main(["distill", f"teacher=[{tmp_path / 'no.pt'}]", f"data.unlabelled=[{tmp_path}]",
                 f"out_dir={tmp_path / 'o'}"]) == 2
    assert "teacher checkpoint not found" in capsys.readouterr().err
    t = tmp_path / "t.pt"
    from edgepose.models import create_model

    create_model("mobilenetv3_small", input_size=64).save_checkpoint(t)
    assert main(["distill", f"teacher=[{t}]", f"data.unlabelled=[{tmp_path / 'missing'}]",
                 f"out_dir={tmp_path / 'o'}"]) == 2
    assert "not found" in capsys.readouterr().err


def test_chain_teacher_student_onnx_int8(tmp_path, data_file):
    """teacher ckpt -> distill (detector crops of real photos + AFLW labels) -> ONNX -> INT8 x2 -> lint."""
    faces = data_file("faces-aws")
    aflw = data_file("aflw2000-sample")
    det = data_file("detectors/yunet/yunet_s_dynamic.onnx")
    from edgepose.distill.trainer import distill, load_distill_config
    from edgepose.models import create_model

    teacher = tmp_path / "teacher.pt"
    create_model("mobilenetv3_small", head="6d", input_size=96).save_checkpoint(teacher)
    cfg = load_distill_config(None, [
        f"teacher=[{teacher}]", "student.name=resnet18", "student.input_size=64",
        f"data.unlabelled=[{faces}]", f"data.labelled=[{{format: aflw2000, root: {aflw}}}]",
        f"data.detector_model={det}", f"data.cache_dir={tmp_path / 'cache'}", "optim.epochs=1",
        "optim.batch_size=8", "loss.gt=1.0", "loss.feature=0.1", f"out_dir={tmp_path / 'run'}"])
    res = distill(cfg, progress=False)
    run = tmp_path / "run"
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file() and (run / "config.yaml").is_file()
    h = res["history"][0]
    assert np.isfinite(h["train_loss"]) and {"train_geodesic", "train_gt", "train_feature"} <= set(h)
    import json

    man = json.loads((run / "manifest.json").read_text())
    assert man["faces"] >= 10 and all(len(f["sha256"]) == 64 for f in man["unlabelled"])
    onnx_path = run / "student.onnx"
    from edgepose.metadata import load_metadata

    meta = load_metadata(onnx_path)
    assert meta.preprocess.input_size == 64 and meta.preprocess.crop.scale == 1.4  # teacher's crop policy
    assert meta.provenance["parent_provenance"]["distilled_from"]["members"] == [str(teacher)]

    from edgepose.quantize.calibration import build_calibration_set
    from edgepose.quantize.lint import lint_qdq
    from edgepose.quantize.ptq import quantize_onnx
    from edgepose.data.faces import DetectorSettings

    calib = build_calibration_set([faces], meta.preprocess, DetectorSettings(model_path=str(det)), max_crops=12,
                                  cache_dir=tmp_path / "cache", progress=False)
    assert calib.crops.shape == (12, 3, 64, 64)
    trt = quantize_onnx(onnx_path, run / "s-trt.onnx", calib.crops, "tensorrt", manifest=calib.manifest)
    cpu = quantize_onnx(onnx_path, run / "s-cpu.onnx", calib.crops, "cpu", manifest=calib.manifest)
    assert lint_qdq(str(trt.path)) == [] and lint_qdq(str(cpu.path))
    man = json.loads((run / "s-trt.onnx.calib.json").read_text())
    n_images = sum(1 for f in faces.iterdir() if f.suffix.lower() in (".jpg", ".jpeg"))
    assert len(man["files"]) == n_images and man["faces"] == 12


def test_cli_chain_distill_export_quantize(tmp_path, data_file, monkeypatch, capsys):
    """The whole chain through `edgepose` subcommands, as a user runs it: distill -> export -> quantize."""
    import json

    from edgepose.cli.main import main
    from edgepose.models import create_model
    from edgepose.quantize.lint import lint_qdq
    from edgepose.quantize.profiles import get_profile, resolve_reduce_range

    faces, aflw = data_file("faces-aws"), data_file("aflw2000-sample")
    det = data_file("detectors/yunet/yunet_s_dynamic.onnx")
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))  # detector crops: no shared-cache side effects
    teacher = tmp_path / "teacher.pt"
    create_model("mobilenetv3_small", head="6d", input_size=64).save_checkpoint(teacher)
    run = tmp_path / "run"
    assert main(["distill", f"teacher=[{teacher}]", "student.name=resnet18", "student.input_size=64",
                 f"data.unlabelled=[{faces}]", f"data.detector_model={det}", "optim.epochs=1", "optim.batch_size=8",
                 "export_onnx=false", f"out_dir={run}", "--no-progress"]) == 0
    assert "distilled student" in capsys.readouterr().out and (run / "best.pt").is_file()

    onnx_path = tmp_path / "student.onnx"
    assert main(["export", str(run / "best.pt"), "-o", str(onnx_path), "--check-images", str(aflw)]) == 0
    side = json.loads((tmp_path / "student.onnx.json").read_text())
    assert side["precision"] == "fp32" and side["preprocess"]["input_size"] == 64

    q = tmp_path / "int8"
    argv = ["quantize", str(onnx_path), "--calib", str(faces), "--detector-model", str(det), "--eval",
            f"aflw2000:{aflw}", "--max-crops", "8", "--runs", "3", "--threads", "1", "-o", str(q)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for prof in ("tensorrt", "cpu"):
        out = q / f"student-int8-{prof}.onnx"
        meta = json.loads((q / f"student-int8-{prof}.onnx.json").read_text())
        assert out.is_file() and (q / f"student-int8-{prof}.onnx.calib.json").is_file()
        assert meta["precision"] == f"int8-{prof}"
        assert meta["provenance"]["command"] == "edgepose " + " ".join(argv)  # main's argv, not sys.argv
        expected_rr, _ = resolve_reduce_range(get_profile(prof), "auto")
        assert meta["extra"]["quantization"]["reduce_range"] is expected_rr
    assert lint_qdq(str(q / "student-int8-tensorrt.onnx")) == []  # the TensorRT rules hold
    assert lint_qdq(str(q / "student-int8-cpu.onnx"))  # and the lint does flag the U8S8 file

    report = json.loads((q / "student-quantize-report.json").read_text())
    md = (q / "student-quantize-report.md").read_text()
    assert report["command"] == "edgepose " + " ".join(argv) and report["eval_set"] == f"aflw2000:{aflw}"
    n_labelled = sum(1 for f in aflw.iterdir() if f.suffix == ".mat")
    assert report["n_eval"] == n_labelled and report["calibration"]["crops"] == 8
    assert set(report["models"]) == {"fp32", "int8-tensorrt", "int8-cpu"}
    for label, row in report["models"].items():
        assert row["size_mb"] > 0 and row["latency"]["median_ms"] > 0 and row["latency"]["runs"] == 3
        assert set(row["accuracy"]) >= {"mae_pitch", "mae_yaw", "mae_roll", "mae", "ge", "n"}
        assert label in md and f"{row['size_mb']:.2f}" in md
        if label != "fp32":
            assert row["speedup_vs_fp32"] > 0 and set(row["delta_vs_fp32"]) == {"mae_pitch", "mae_yaw", "mae_roll",
                                                                                  "mae", "ge"}
            assert row["quantization"]["profile"] == label.split("-", 1)[1]
    assert "int8-cpu: cpu profile" in md and md.splitlines()[0] in printed
