"""``edgepose demo``: a short real run (synthetic video -> pipeline -> DMS -> accuracy), scoring and
error paths.  The run uses the shipped default model and whatever detector the cache offers (Haar on a
fresh machine), exactly like the README's main job."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgepose import geometry
from edgepose.cli.demo import score_against_truth
from edgepose.cli.main import main


def _edgepose(*args, cwd=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "edgepose.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.timeout(300)
def test_short_demo_writes_every_output_and_reuses_the_video(tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("moderngl")
    out = tmp_path / "demo"
    r = _edgepose("demo", "--seconds", "2", "--fps", "10", "--output", str(out), "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("annotated.mp4", "run.jsonl", "stats.json", "dms-events.jsonl", "accuracy.json",
                 "synth/driver.mp4", "synth/driver.poses.jsonl", "synth/driver.mount.yaml"):
        assert (out / name).is_file(), f"{name} missing; stdout:\n{r.stdout}"
    assert (out / "annotated.mp4").stat().st_size > 1000
    frames = [json.loads(l) for l in (out / "run.jsonl").read_text().splitlines()]
    assert sum(1 for f in frames if f.get("type") == "frame") == 20
    acc = json.loads((out / "accuracy.json").read_text())
    assert acc["frames"] == 20 and 0.0 <= acc["detection_rate"] <= 1.0
    # the first 2 s are road-forward, near-frontal: even the Haar fallback must find the driver there
    assert acc["detection_rate"] >= 0.5, acc
    assert acc["geodesic_mean_deg"] < 30.0, acc  # a sane pose on a frontal driver (bound, not a copied number)
    assert "road" in acc["phases"]
    for what in ("annotated video", "DMS events", "accuracy vs ground truth"):
        assert what in r.stdout
    # idempotent: a second run reuses the rendered video
    r2 = _edgepose("demo", "--seconds", "2", "--fps", "10", "--output", str(out), "-q", "--max-frames", "5")
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "reusing the synthetic video" in r2.stdout
    assert json.loads((out / "accuracy.json").read_text())["frames"] == 5


def _write_truth(path, Rs, phases):
    with open(path, "w") as fh:
        for i, (R, ph) in enumerate(zip(Rs, phases)):
            fh.write(json.dumps({"frame": i, "phase": ph, "R": np.asarray(R).reshape(-1).tolist()}) + "\n")


def _write_run(path, Rs):
    with open(path, "w") as fh:
        fh.write(json.dumps({"type": "header"}) + "\n")
        for i, R in enumerate(Rs):
            faces = [] if R is None else [{"R": np.asarray(R).tolist(), "is_driver": True, "valid": True}]
            fh.write(json.dumps({"type": "frame", "frame": i, "faces": faces}) + "\n")


def test_score_against_truth_counts_misses_and_measures_errors(tmp_path):
    gt = [geometry.euler_to_matrix([0, 10 * i, 0]) for i in range(4)]
    _write_truth(tmp_path / "t.jsonl", gt, ["road", "road", "left_mirror", "left_mirror"])
    pred = [gt[0], geometry.euler_to_matrix([0, 10 + 5, 0]), None, gt[3]]
    _write_run(tmp_path / "r.jsonl", pred)
    rep = score_against_truth(tmp_path / "r.jsonl", tmp_path / "t.jsonl")
    assert rep["frames"] == 4 and rep["frames_with_pose"] == 3
    assert rep["detection_rate"] == pytest.approx(0.75)
    assert rep["geodesic_mean_deg"] == pytest.approx(5.0 / 3, abs=1e-6)
    assert rep["phases"]["left_mirror"]["detection_rate"] == pytest.approx(0.5)
    assert rep["phases"]["left_mirror"]["geodesic_mean_deg"] == pytest.approx(0.0, abs=1e-6)
    assert rep["zones"]["mirrors"]["detection_rate"] == pytest.approx(0.5)
    assert rep["zones"]["road"]["detection_rate"] == pytest.approx(1.0)


@pytest.mark.parametrize("args, words", [
    (["--seconds", "0"], "--seconds"),
    (["--model", "/nonexistent/model.onnx"], "pose model not found"),
    (["--dms", "/nonexistent/preset.yaml"], "DMS preset not found"),
    (["--source", "/nonexistent/drive.mp4"], "/nonexistent/drive.mp4"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, words):
    rc = main(["demo", "--output", str(tmp_path / "o"), "-q", *args])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error:" in err and words in err and "Traceback" not in err
