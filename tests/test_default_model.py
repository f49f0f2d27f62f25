"""The default model shipped in edgepose/assets/models: resolution, sidecars, sha256 + size budget,
that it runs and returns rotations, a sane accuracy bound on the AFLW2000 fixtures, and the build
script's guards (no evaluation data in training, the package size budget)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import defaults
from edgepose.errors import ModelError, UserError
from edgepose.metadata import file_sha256, load_metadata

BUDGET = 5_000_000


def test_every_profile_resolves_to_a_shipped_onnx_with_sidecar():
    for profile in defaults.PROFILES:
        p = defaults.default_pose_model(profile)
        assert p.suffix == ".onnx" and p.is_file() and p.parent == defaults.MODELS_DIR
        assert (p.parent / (p.name + ".json")).is_file()
    assert defaults.default_pose_model() == defaults.default_pose_model("fp32")  # faster than INT8 on the CPU
    assert defaults.default_pose_model("tensorrt") == defaults.default_pose_model("int8-tensorrt")


def test_unknown_profile_and_missing_file_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="int8-cpu"):
        defaults.default_pose_model("int4")
    monkeypatch.setattr(defaults, "MODELS_DIR", tmp_path)
    with pytest.raises(ModelError, match="edgepose.assets.build"):
        defaults.default_pose_model("fp32")


def test_manifest_matches_the_files_and_the_size_budget():
    man = defaults.default_models_manifest()
    total = 0
    for profile, name in defaults.PROFILES.items():
        entry = man["models"][profile]
        p = defaults.MODELS_DIR / name
        assert entry["file"] == name
        assert file_sha256(p) == entry["sha256"], f"{name} changed without rebuilding manifest.json"
        assert p.stat().st_size == entry["bytes"]
        side = defaults.MODELS_DIR / entry["sidecar"]
        assert file_sha256(side) == entry["sidecar_sha256"]
        total += p.stat().st_size + side.stat().st_size
    assert total <= BUDGET, f"shipped default models take {total} bytes > {BUDGET}"
    prov = man["provenance"]
    assert "whenet" in prov["teacher"].lower()
    used = " ".join(str(x) for x in prov["config"]["data"]["real"]).lower()
    assert "aflw" not in used and "300w" not in used  # evaluation data never trains the shipped model


def test_sidecars_describe_one_student_and_its_int8_profiles():
    metas = {k: load_metadata(defaults.default_pose_model(k)) for k in defaults.PROFILES}
    fp32 = metas["fp32"]
    assert fp32.model == "mobilenetv3_small_075" and fp32.head == "6d"
    for k, m in metas.items():
        assert m.preprocess.to_dict() == fp32.preprocess.to_dict(), f"{k}: preprocessing differs from FP32"
        assert m.model == fp32.model
    assert fp32.preprocess.crop.box_source == "detector"  # trained on detector crops, as deployed


def test_each_profile_returns_rotation_matrices():
    pytest.importorskip("onnxruntime")
    from edgepose.runtime import load_backend

    x = np.random.default_rng(0).normal(size=(3, 3, 128, 128)).astype(np.float32)
    for profile in defaults.PROFILES:
        with load_backend(defaults.default_pose_model(profile), intra_op_threads=1) as b:
            x = x[:, :, : b.spec.input_size, : b.spec.input_size]
            R = b.infer(x)["R"].astype(np.float64)
        assert R.shape == (3, 3, 3)
        assert np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-4)
        assert np.allclose(np.linalg.det(R), 1.0, atol=1e-4)


@pytest.mark.timeout(120)
def test_fp32_meets_a_sane_bound_on_the_aflw2000_fixtures(data_file):
    """Detector boxes (YuNet, as deployed) -> FP32 default model; bounds, not copied numbers."""
    pytest.importorskip("onnxruntime")
    yunet = data_file("detectors/yunet/yunet_s_640_640.onnx")
    aflw = data_file("aflw2000-sample")
    from edgepose.assets.evaluate import aflw_faces
    from edgepose.metrics import euler_abs_errors, geodesic_errors
    from edgepose.preprocess import preprocess_batch
    from edgepose.runtime import load_backend

    items, G = aflw_faces(aflw.parent, yunet)
    assert len(items) == 6
    with load_backend(defaults.default_pose_model("fp32"), intra_op_threads=1) as b:
        P = np.concatenate([b.infer(preprocess_batch(im, [box], b.spec))["R"] for im, box in items]).astype(np.float64)
    mae = euler_abs_errors(P, G).mean()
    ge = geodesic_errors(P, G)
    assert mae < 15.0, f"mean MAE {mae:.1f} deg on the AFLW2000 fixtures"
    assert np.median(ge) < 25.0, f"median geodesic error {np.median(ge):.1f} deg"
    from edgepose import geometry

    yaw_pred = geometry.matrix_to_euler(P)[:, 1]
    yaw_gt = geometry.matrix_to_euler(G)[:, 1]
    big = np.abs(yaw_gt) > 45  # the half-profile / profile faces: the sign of yaw must be right
    assert big.any() and np.all(np.sign(yaw_pred[big]) == np.sign(yaw_gt[big]))


def test_build_refuses_evaluation_data_for_training(tmp_path):
    from edgepose.assets.build import BuildConfig, real_faces

    cfg = BuildConfig()
    cfg.data.real = ["aflw2000-sample"]
    with pytest.raises(UserError, match="evaluation data"):
        real_faces(cfg, tmp_path, teacher=None, spec=None, out=tmp_path)


def test_install_enforces_the_size_budget(tmp_path):
    from edgepose.assets.build import install

    paths = {}
    for k in ("fp32", "int8-cpu"):
        p = tmp_path / f"{k}.onnx"
        p.write_bytes(b"\0" * 3_000_000)
        (tmp_path / f"{k}.onnx.json").write_text("{}")
        paths[k] = p
    with pytest.raises(UserError, match="budget"):
        install(paths, {}, dest=tmp_path / "pkg")
    del paths["int8-cpu"]
    man = install(paths, {"teacher": "x"}, dest=tmp_path / "pkg")
    assert (tmp_path / "pkg" / "fp32.onnx").is_file() and man.is_file()


def test_edgepose_run_defaults_to_the_shipped_default_model(data_file, tmp_path):
    """`edgepose run SOURCE` without --model uses default_pose_model() (recorded in the JSONL header)."""
    import json
    import subprocess
    import sys

    video = data_file("videos/single_face.mp4")
    out = tmp_path / "run.jsonl"
    r = subprocess.run([sys.executable, "-m", "edgepose.cli.main", "run", str(video), "--max-frames", "3", "-q",
                        "--jsonl", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    header = json.loads(out.read_text().splitlines()[0])
    assert header["model"] == str(defaults.default_pose_model())


def test_width_075_backbone_has_torchvision_structure():
    """mobilenetv3_small_075 = torchvision mobilenet_v3_small(width_mult=0.75): same keys as the full-width
    model, channels scaled by _make_divisible(c * 0.75, 8) (first conv 16 -> 16, last block 96 -> 72,
    last 1x1 conv 6 x 72 = 432, classifier hidden 1024 -> 768)."""
    from edgepose.models.backbones.mobilenetv3 import mobilenetv3_small, mobilenetv3_small_075

    full, small = mobilenetv3_small(num_classes=1000), mobilenetv3_small_075(num_classes=1000)
    assert set(full.state_dict()) == set(small.state_dict())
    assert small.num_features == 432
    sd = small.state_dict()
    assert sd["features.0.0.weight"].shape[0] == 16
    assert sd["classifier.0.weight"].shape == (768, 432)
    assert all(v.shape[0] % 8 == 0 for k, v in sd.items() if k.endswith(".0.weight") and v.ndim == 4
               and ".fc" not in k)
    n = sum(p.numel() for p in mobilenetv3_small_075().parameters())
    assert 400_000 < n < 600_000  # fits the 5 MB budget as FP32 + two INT8 copies
