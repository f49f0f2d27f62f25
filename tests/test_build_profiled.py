"""The default-model build's profiled real faces (edgepose.assets.build_profiled, ``data.profiled_*``):
the label is the source's (ensemble) label composed with the rotation the profiler applied, the caches are
refused when stale, and a small build trains on them and validates on profiled held-out people."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepose import geometry
from edgepose.errors import UserError

pytest.importorskip("moderngl")


@pytest.fixture(scope="module")
def profiler_ready():
    pytest.importorskip("ai_edge_litert", reason="face profiling needs ai-edge-litert (pip install 'edgepose[profile]')")
    from edgepose.errors import DependencyError
    from edgepose.synth.profile.facemesh import model_path
    from edgepose.synth.profile.render import get_profile_renderer

    try:
        if not model_path().exists():
            pytest.skip(f"MediaPipe face-landmark model not found at {model_path()}")
        get_profile_renderer(64, 1)
    except (UserError, DependencyError) as exc:  # no EGL / no mediapipe wheel on this machine
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def synthetic_faces(profiler_ready):
    """Synthetic heads with EXACT labels, stored like the build's real faces (margin crops, boxes, labels,
    teacher spread, source names): a 'real face' whose true pose is known."""
    from edgepose.preprocess import to_bgr
    from edgepose.synth import SynthHeadDataset

    ds = SynthHeadDataset(6, seed=1, split="test", n_identities=6, pose_range="frontal", size=168)
    s = [ds[i] for i in range(len(ds))]
    return {"images": np.stack([to_bgr(x.image) for x in s]), "boxes": np.asarray([x.box for x in s], np.float32),
            "R": np.asarray([x.R for x in s], np.float32),
            "disagreement": np.asarray([3.0, 1.0, 2.0, 0.5, 4.0, np.nan], np.float32),
            "sources": np.asarray([f"synth-{i}.png:0" for i in range(len(s))])}


def _cfg(**data):
    from edgepose.assets.build_config import BuildConfig

    cfg = BuildConfig()
    cfg.data.profiled_per_face = 2
    cfg.data.profiled_pose_range = "pitch=-30:30,yaw=-55:55,roll=-20:20"
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


def _spec():
    from edgepose.preprocess import CropPolicy, PreprocessSpec

    return PreprocessSpec(input_size=96, crop=CropPolicy(scale=1.6))


def test_profiled_label_is_the_source_label_composed_with_the_applied_rotation(synthetic_faces):
    from edgepose.assets.build_profiled import profiled_set
    from edgepose.synth.profile.pipeline import FaceFitter

    real = synthetic_faces
    data = profiled_set(_cfg(profiled_min_visibility=0.0), real, _spec(), 4, cache=None)
    assert data["images"].shape == (4, 168, 168, 3) and data["images"].dtype == np.uint8  # real.npz's layout
    stats = json.loads(str(data["stats"]))
    assert stats["renders"] == 4 and stats["faces_used"] == 2
    # sources: faces within +-30 deg of yaw (a profile turned back is invented), lowest teacher disagreement first
    yaw = np.abs(geometry.matrix_to_euler(real["R"].astype(np.float64))[:, 1])
    assert stats["faces_turned_away"] == int((yaw > 30).sum()) >= 1
    used = list(dict.fromkeys(data["face"].tolist()))
    assert not set(used) & set(np.flatnonzero(yaw > 30).tolist())
    assert used == sorted(used, key=lambda f: real["disagreement"][f])
    fitter = FaceFitter(detector="none")
    refits = 0
    for i, f in enumerate(data["face"]):
        R_true, Q, R_label, R_fit = (np.asarray(a, np.float64) for a in (real["R"][f], data["Q"][i], data["R"][i],
                                                                            data["R_fit"][i]))
        # Q is the profiler's rotation: it takes the source's mesh fit to the profiler's own (fit-based) label
        src_fit = fitter(real["images"][f], tuple(real["boxes"][f]))
        assert np.allclose(src_fit.R @ Q.T, R_fit, atol=1e-5)
        assert geometry.geodesic_distance(Q, np.eye(3)) > 5  # the face was really turned
        # the label: the source's label (here its exact synthetic pose) composed with Q, not the fit's label
        assert np.allclose(R_label, R_true @ Q.T, atol=1e-5)
        gap = geometry.geodesic_distance(R_true, src_fit.R)
        assert gap > 3  # the mesh fit misreads a synthetic head's pose by several degrees: the test tells them apart
        assert geometry.geodesic_distance(R_label, R_fit) == pytest.approx(gap, abs=1e-3)  # composition keeps it
        assert geometry.geodesic_distance(R_label, Q.T @ R_true) > 1.0  # the other order is another label
        # real pixels: where the mesh fits the RENDER again, it reads the turned pose, not the source's
        again = fitter(data["images"][i], tuple(data["boxes"][i]))
        if again is not None:
            refits += 1
            assert geometry.geodesic_distance(again.R, R_fit) < geometry.geodesic_distance(again.R, src_fit.R)
        # the carried detector box frames the face like the real crops (1 / (1.6 x MARGIN) of the image)
        side = max(data["boxes"][i][2] - data["boxes"][i][0], data["boxes"][i][3] - data["boxes"][i][1])
        assert 0.25 < side / 168 < 0.5
    assert refits >= 2


def test_profiled_cache_is_refused_when_stale_and_workers_do_not_change_it(synthetic_faces, tmp_path):
    from edgepose.assets.build_profiled import profiled_set

    real, cache = synthetic_faces, tmp_path / "profiled.npz"
    serial = profiled_set(_cfg(), real, _spec(), 3, cache=None)
    made = profiled_set(_cfg(profiled_workers=2), real, _spec(), 3, cache=cache)
    for k in ("images", "boxes", "R", "face", "pose"):
        assert np.array_equal(serial[k], made[k]), k
    again = profiled_set(_cfg(), real, _spec(), 3, cache=cache)  # from the cache
    assert np.array_equal(again["images"], made["images"])
    relabelled = {**real, "R": real["R"][[1, 0, 2, 3, 4, 5]]}
    with pytest.raises(UserError, match="source faces.*delete that file"):
        profiled_set(_cfg(), relabelled, _spec(), 3, cache=cache)
    with pytest.raises(UserError, match="pose_range"):
        profiled_set(_cfg(profiled_pose_range="wide"), real, _spec(), 3, cache=cache)
    with pytest.raises(UserError, match=r"n 3 \(asked: 5\)"):
        profiled_set(_cfg(), real, _spec(), 5, cache=cache)


def test_bad_profiled_settings_stop_the_build_before_any_labelling(tmp_path, capsys):
    from edgepose.cli.main import main

    out = tmp_path / "out"
    assert main(["models", "build", "--data-root", str(tmp_path), "data.profiled_n=10", "data.profiled_per_face=0",
                 f"out_dir={out}"]) == 2
    assert "profiled_per_face" in capsys.readouterr().err
    assert main(["models", "build", "--data-root", str(tmp_path), "data.profiled_n=10",
                 "data.profiled_pose_range=sideways", f"out_dir={out}"]) == 2
    assert "sideways" in capsys.readouterr().err
    assert not (out / "real.npz").exists()


def test_build_trains_on_profiled_faces_and_validates_on_profiled_held_out_people(profiler_ready, data_file,
                                                                                  tmp_path):
    """A small `edgepose models build` with data.profiled_*: training faces profiled into profiled.npz,
    held-out people only into profiled-val.npz, both read by training; metrics.jsonl gets the profiled
    validation figure and label-histogram.json the profiled part."""
    import shutil

    import torch

    from edgepose.cli.main import main
    from edgepose.models.pose_model import PoseModel
    from edgepose.preprocess import PreprocessSpec

    photos, held_out = tmp_path / "photos", tmp_path / "held-out"
    photos.mkdir()
    held_out.mkdir()
    for name in ("IMG_1232.JPG", "IMG_1233.JPG", "IMG_1234.JPG"):
        shutil.copy(data_file(f"faces-aws/{name}"), photos / name)
    for name in ("IMG_1236.JPG", "IMG_1237.JPG"):
        shutil.copy(data_file(f"faces-aws/{name}"), held_out / name)
    torch.manual_seed(0)
    PoseModel.build("mobilenet_v1_050", head="6d", preprocess=PreprocessSpec(input_size=64)).save_checkpoint(
        tmp_path / "teacher.pt")
    out = tmp_path / "out"
    args = ["models", "build", "--data-root", str(tmp_path), f"teacher={tmp_path / 'teacher.pt'}", f"out_dir={out}",
            "student.name=mobilenet_v1_050", "student.input_size=64", f"data.real=[{photos}]",
            f"data.real_val=[{held_out}]", f"data.detector_model={data_file('detectors/yunet/yunet_s_640_640.onnx')}",
            "data.synth_n=4", "data.synth_val_n=2", "data.synth_size=64", "data.profiled_n=4",
            "data.profiled_per_face=2", "data.profiled_val_n=2", "data.agreement_weighting=true",
            "optim.epochs=1", "optim.batch_size=4", "optim.workers=0", "calib_crops=4", "threads=2"]
    # the recipe's roi-heads stage needs a face-free video under the data root: named before any work
    err_out = tmp_path / "err"
    assert main(args[:-1] + [f"out_dir={err_out}", "threads=2"]) != 0 and not (err_out / "real.npz").exists()
    args.append("roi_heads.enabled=false")  # the heads have their own tests (test_roi_heads.py)
    assert main(args) == 0
    prof, prof_val = np.load(out / "profiled.npz"), np.load(out / "profiled-val.npz")
    real, real_val = np.load(out / "real.npz"), np.load(out / "real-val.npz")
    assert len(prof["R"]) == 4 and len(prof_val["R"]) == 2
    assert prof["images"].shape[1:] == real["images"].shape[1:]
    # training renders come from training faces, validation renders from held-out people only
    train_names, held_names = set(real["sources"].tolist()), set(real_val["sources"].tolist())
    assert set(prof["sources"].tolist()) <= train_names and set(prof_val["sources"].tolist()) <= held_names
    for data, src in ((prof, real), (prof_val, real_val)):
        for i, f in enumerate(data["face"]):
            assert np.allclose(data["R"][i], src["R"][f].astype(np.float64) @ data["Q"][i].T.astype(np.float64),
                               atol=1e-5)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and 0.0 <= rows[0]["profiled_val_geodesic_mean"] <= 180.0
    assert 0.0 <= rows[0]["profiled_val_geodesic_median"] <= 180.0
    assert json.loads((out / "label-histogram.json").read_text())["profiled"]["n"] == 4
