"""``edgepose synth`` export / video / preview: round trips through edgepose.data and PyAV, error paths."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edgepose import geometry
from edgepose.cli.main import main

pytest.importorskip("moderngl")


@pytest.fixture(scope="module", autouse=True)
def _gl():
    from edgepose.errors import UserError
    from edgepose.synth.renderer import get_renderer

    try:
        get_renderer(64, 1)
    except UserError as exc:
        pytest.skip(str(exc))


def test_export_round_trip_through_the_folder_reader(tmp_path):
    from edgepose.data import FolderReader
    from edgepose.synth.dataset import SynthConfig, SynthHeadDataset

    out = tmp_path / "synth"
    argv = ["synth", "export", "--n", "6", "--out", str(out), "--seed", "3", "--pose-range", "full",
            "--ir-fraction", "0.5", "--size", "64", "--ssaa", "1", "--identities", "4", "--split", "val"]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert len(rows) == 6 and not (out / "labels.csv.partial").exists()
    meta = json.loads((out / "synth.json").read_text())
    assert meta["n"] == 6 and meta["config"]["split"] == "val"
    reader = FolderReader(out / "labels.csv")
    ds = SynthHeadDataset(6, seed=3, config=SynthConfig(split="val", n_identities=4, pose_range="full",
                                                        ir_fraction=0.5, size=64, ssaa=1))
    n_gray = 0
    for i in range(6):
        got, ref = reader[i], ds[i]
        np.testing.assert_array_equal(got.image, ref.image)   # PNG is lossless, GRAY stays GRAY
        np.testing.assert_allclose(got.R, ref.R, atol=1e-8)    # r00..r22 are preferred over Euler
        np.testing.assert_allclose(got.box, ref.box, atol=1e-3)
        # the Euler columns decode to the same matrix (6DRepNet decode, any rotation)
        pyr = [float(rows[i][k]) for k in ("pitch", "yaw", "roll")]
        assert geometry.geodesic_distance(geometry.euler_to_matrix(pyr), ref.R) < 1e-3
        kp = np.array([[float(rows[i]["nose_tip_x"]), float(rows[i]["nose_tip_y"])]])
        np.testing.assert_allclose(kp[0], ref.extra["keypoints"][2], atol=1e-3)
        assert int(rows[i]["nose_tip_v"]) == int(ref.extra["visible"][2])
        # with the recorded intrinsics, perspective correction at the box centre gives the camera-axes pose
        K = np.array([[float(rows[i]["fx"]), 0, float(rows[i]["cx"])], [0, float(rows[i]["fy"]), float(rows[i]["cy"])],
                      [0, 0, 1.0]])
        c = ((got.box[0] + got.box[2]) / 2, (got.box[1] + got.box[3]) / 2)
        R_cam = geometry.perspective_correction(got.R, K, c)
        np.testing.assert_allclose(R_cam, ds.render(i).R, atol=1e-4)
        n_gray += got.image.ndim == 2
    assert 0 < n_gray < 6  # the IR fraction produced both kinds (this seed)
    # a second export into the same folder is refused unless --overwrite
    assert main(argv) == 2
    assert main(argv + ["--overwrite"]) == 0


def test_export_keeps_finished_rows_when_interrupted(tmp_path, monkeypatch):
    from edgepose.synth import export as ex

    calls = {"n": 0}
    real = ex._write_image

    def flaky(path, img):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        real(path, img)

    monkeypatch.setattr(ex, "_write_image", flaky)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        ex.export_dataset(out, 10, seed=1, progress=False,
                          config=ex.SynthConfig(size=48, ssaa=1, n_identities=2))
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert [r["image"] for r in rows] == [f"images/{i:06d}.png" for i in range(3)]
    assert all((out / r["image"]).is_file() for r in rows)
    assert not list(out.glob("images/*.tmp*"))


@pytest.mark.parametrize("argv, message", [
    (["synth", "export", "--n", "2", "--out", "{tmp}/a", "--pose-range", "yaw=30:10"], "pose range"),
    (["synth", "export", "--n", "2", "--out", "{tmp}/b", "--ir-fraction", "2"], "ir_fraction"),
    (["synth", "export", "--n", "2", "--out", "{tmp}/c", "--backgrounds", "beach"], "backgrounds"),
    (["synth", "export", "--n", "0", "--out", "{tmp}/d"], "--n"),
    (["synth", "export", "--n", "2", "--out", "{tmp}/e", "--identities", "99999999"], "holds"),
    (["synth", "video", "--out", "{tmp}/v.avi"], ".mp4"),
    (["synth", "video", "--out", "{tmp}/v.mp4", "--width", "321"], "even"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_video_with_ground_truth(tmp_path):
    av = pytest.importorskip("av")
    out = tmp_path / "drive.mp4"
    assert main(["synth", "video", "--out", str(out), "--seconds", "0.6", "--fps", "10", "--width", "160",
                 "--height", "120", "--seed", "2"]) == 0
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    recs = [json.loads(line) for line in (tmp_path / "drive.poses.jsonl").read_text().splitlines()]
    meta = json.loads((tmp_path / "drive.json").read_text())
    assert len(frames) == len(recs) == meta["frames"] == 6 and frames[0].shape == (120, 160, 3)
    assert (tmp_path / "drive.mount.yaml").read_text().count("road_pose_deg") == 1
    assert not list(tmp_path.glob("*.partial*"))
    K = np.array(meta["K"])
    for r in recs:
        R, Rc = np.array(r["R"]).reshape(3, 3), np.array(r["R_crop"]).reshape(3, 3)
        np.testing.assert_allclose(geometry.matrix_to_euler(R), [r["pitch"], r["yaw"], r["roll"]], atol=1e-3)
        # the head sits off the optical axis: the crop label differs, and the runtime's perspective
        # correction (recorded K, ray through the box centre) recovers the camera-axes label
        x1, y1, x2, y2 = r["box"]
        assert geometry.geodesic_distance(R, Rc) > 1.0
        c = ((x1 + x2) / 2, (y1 + y2) / 2)
        np.testing.assert_allclose(geometry.perspective_correction(Rc, K, c), R, atol=1e-4)
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120
    assert recs[0]["phase"] == "road"
    np.testing.assert_allclose([recs[0]["pitch"], recs[0]["yaw"]], meta["neutral_pyr"][:2], atol=4.0)
    # the video is not a still: the head moves
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5
    assert K.shape == (3, 3)


def test_drive_script_visits_every_phase():
    from edgepose.synth.video import DRIVE_SCRIPT, NEUTRAL, pose_track

    fps = 10
    n = int(sum(m + h for _, m, h, _ in DRIVE_SCRIPT) * fps)
    pyr, phases = pose_track(n, fps, seed=0)
    assert set(phases) == {s[0] for s in DRIVE_SCRIPT}
    yaw = pyr[:, 1] - NEUTRAL[1]
    assert yaw.min() < -40 and yaw.max() > 50          # left and right mirror glances
    dis = np.array(phases) == "distraction"
    assert (pyr[dis, 0] - NEUTRAL[0]).min() < -30      # looking down at the console
    assert dis.sum() / fps >= 3.0                      # a long glance


def test_preview_sheet(tmp_path):
    import cv2

    out = tmp_path / "sheet.png"
    assert main(["synth", "preview", "--n", "4", "--out", str(out), "--size", "64", "--ssaa", "1"]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (128, 128, 3)


def test_missing_gl_backend_is_a_clear_error(tmp_path, repo_root):
    import os
    import subprocess
    import sys

    env = {**os.environ, "EDGEPOSE_GL_BACKEND": "no-such-backend"}
    p = subprocess.run([sys.executable, "-m", "edgepose.cli.main", "synth", "preview", "--n", "1", "--out",
                        str(tmp_path / "x.png")], cwd=repo_root, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith("error: cannot create an off-screen OpenGL context") and "Traceback" not in p.stderr
    assert not (tmp_path / "x.png").exists()
