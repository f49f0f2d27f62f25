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
    with pytest.raises(ModelError, match="edgepose models build"):
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
    teachers = prov["teacher"] if isinstance(prov["teacher"], list) else [prov["teacher"]]  # list since the ensemble option
    assert any("whenet" in t.lower() for t in teachers)
    used = " ".join(str(x) for x in prov["config"]["data"]["real"]).lower()
    assert "aflw" not in used and "300w" not in used  # evaluation data never trains the shipped model


def test_sidecars_describe_one_student_and_its_int8_profiles():
    metas = {k: load_metadata(defaults.default_pose_model(k)) for k in defaults.PROFILES}
    fp32 = metas["fp32"]
    from edgepose.assets.build_config import REPO, BuildConfig
    from edgepose.config import load_config

    cfg = load_config(BuildConfig, REPO / "configs" / "default-model" / "build.yaml", [])
    assert fp32.model == cfg.student.name and fp32.head == "6d"  # the files are what the shipped config builds
    assert fp32.preprocess.input_size == cfg.student.input_size
    import json

    for k, m in metas.items():  # the licence caveat (teachers trained on 300W-LP) travels with every file
        assert "300W-LP (non-commercial research data)" in json.dumps(m.provenance), k
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
    from edgepose.assets.build_config import BuildConfig
    from edgepose.assets.build_data import real_faces

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


def test_weight_average_tracks_the_trained_weights_and_rejects_bad_decays():
    import torch

    from edgepose.train.ema import WeightAverage
    from edgepose.models.pose_model import PoseModel

    torch.manual_seed(0)
    model = PoseModel.build("mobilenetv3_small_075", head="6d")
    start = {k: v.clone() for k, v in model.state_dict().items()}
    avg = WeightAverage(model, 0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # one "optimizer step" of +1 everywhere
    avg.update(model)  # first step: decay min(0.9, 1/10) = 0.1 -> 90 % of the way to the new weights
    params, checked = dict(model.named_parameters()), 0
    for k, v in avg.model.state_dict().items():
        if k in params:
            assert torch.allclose(v, start[k] + 0.9, atol=1e-5), k
            checked += 1
        elif not v.dtype.is_floating_point:
            assert torch.equal(v, model.state_dict()[k]), k  # counters are copied, not averaged
    assert checked == len(params) > 50
    assert all(not p.requires_grad for p in avg.model.parameters())
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(UserError, match="optim.ema"):
            WeightAverage(model, bad)


def test_build_labels_real_faces_with_a_teacher_ensemble_and_guards_its_cache(data_file, tmp_path):
    """`teacher: [a, b]` (our own trained teachers, each cropping by its own preprocessing) labels every
    detected face with a rotation; a cache labelled by other teachers is refused, not silently reused."""
    import shutil

    import torch

    from edgepose.assets.build_config import BuildConfig, student_spec
    from edgepose.assets.build_data import real_faces
    from edgepose.distill.teacher import load_teacher
    from edgepose.models.pose_model import PoseModel
    from edgepose.preprocess import CropPolicy, PreprocessSpec

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("IMG_1232.JPG", "IMG_1233.JPG", "IMG_1234.JPG"):
        shutil.copy(data_file(f"faces-aws/{name}"), photos / name)
    torch.manual_seed(0)
    ckpts = []
    for i, spec in enumerate([PreprocessSpec(input_size=64), PreprocessSpec(input_size=96, color_order="BGR",
                                                                            crop=CropPolicy(scale=1.2))]):
        ckpts.append(str(PoseModel.build("mobilenetv3_small_075", head="6d", preprocess=spec)
                         .save_checkpoint(tmp_path / f"t{i}.pt")))
    cfg = BuildConfig()
    cfg.teacher = ckpts
    cfg.data.real = [str(photos)]
    cfg.data.detector_model = str(data_file("detectors/yunet/yunet_s_640_640.onnx"))
    teacher = load_teacher(cfg.teacher)
    spec = student_spec(cfg, teacher.specs[0])
    out = tmp_path / "out"
    out.mkdir()
    data = real_faces(cfg, tmp_path, teacher, spec, out)
    R = data["R"].astype(np.float64)
    assert len(R) == len(data["images"]) >= 3
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-4) and np.allclose(np.linalg.det(R), 1, atol=1e-4)
    assert list(data["teachers"]) == ckpts
    cfg.teacher = ckpts[:1]
    with pytest.raises(UserError, match="delete"):
        real_faces(cfg, tmp_path, load_teacher(cfg.teacher), spec, out)


def test_evaluate_scores_a_profiled_held_out_set_and_names_a_wrong_file(tmp_path, data_root):
    """`edgepose models evaluate --profiled-val`: a build's held-out people rendered at large poses are a test set
    of their own (column and detail table); a file without the arrays is one line naming the fix."""
    from edgepose.assets.evaluate import PROFILED, evaluate_models, markdown
    from edgepose.synth import SynthHeadDataset

    ds = SynthHeadDataset(6, seed=3, split="test", n_identities=6, pose_range="wide", size=160)
    samples = [ds[i] for i in range(6)]
    npz = tmp_path / "profiled-val.npz"
    import cv2

    bgr = [s.image if s.image.ndim == 3 else cv2.cvtColor(s.image, cv2.COLOR_GRAY2BGR) for s in samples]  # IR looks
    np.savez(npz, images=np.stack(bgr), boxes=np.stack([s.box for s in samples]),
             R=np.stack([s.R for s in samples]))
    rep = evaluate_models(data_root, teachers=[""], profiled_val=str(npz), clips=(), synth_n=2, no_timing=True)
    res = rep["sets"][PROFILED]["fp32"]
    assert res["n"] == 6 and 0.0 < res["geodesic"] < 90.0
    assert "profiled held-out geodesic" in markdown(rep)
    sub = rep["subpixel_shift"]  # the stability test's measurement, as a column for every row
    assert sub["faces"] >= 6 and set(sub) >= {"fp32", "int8-cpu", "int8-tensorrt"}
    assert 0.0 < sub["fp32"]["mean"] <= sub["fp32"]["max"] < 5.0 and "0.01 px shift" in markdown(rep)
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="no R, boxes array"):
        evaluate_models(data_root, teachers=[""], profiled_val=str(bad), clips=(), synth_n=2, no_timing=True)


def test_evaluate_measures_the_sub_pixel_shift_on_the_held_out_people(tmp_path, data_root):
    """`--real-val` adds the 0.01 px shift on the held-out crops (the INT8 decision set), student files only."""
    from edgepose.assets.evaluate import OnnxRow, evaluate_models, markdown, real_val_shift
    from edgepose.evaluation import subpixel_change
    from edgepose.synth import SynthHeadDataset

    ds = SynthHeadDataset(5, seed=4, split="test", n_identities=5, pose_range="wide", size=160)
    samples = [ds[i] for i in range(5)]
    import cv2

    bgr = [s.image if s.image.ndim == 3 else cv2.cvtColor(s.image, cv2.COLOR_GRAY2BGR) for s in samples]
    npz = tmp_path / "real-val.npz"
    np.savez(npz, images=np.stack(bgr), boxes=np.stack([s.box for s in samples]).astype(np.float32),
             R=np.stack([s.R for s in samples]))
    rep = evaluate_models(data_root, teachers=[""], real_val=str(npz), clips=(), synth_n=2, no_timing=True)
    shift = rep["subpixel_shift_real_val"]
    assert shift["faces"] == 5 and set(shift) >= {"fp32", "int8-cpu", "int8-tensorrt"}
    row = OnnxRow("fp32", defaults.default_pose_model("fp32"))
    direct = subpixel_change(row.predict, [(im, tuple(float(v) for v in s.box)) for im, s in zip(bgr, samples)])
    assert shift["fp32"]["mean"] == pytest.approx(float(direct.mean()), rel=1e-5)
    assert real_val_shift([row], npz)["fp32"]["max"] == pytest.approx(float(direct.max()), rel=1e-5)
    assert f"{rep['subpixel_shift']['fp32']['mean']:.3f} / {shift['fp32']['mean']:.3f}" in markdown(rep)
