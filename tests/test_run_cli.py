"""``edgepose run`` end to end: real videos, test sources, sinks, metadata, bad input, signals.

Real components only: GStreamer, a small edgepose model exported to ONNX, ONNX Runtime, YuNet /
Haar.  The pose model has random weights (angles are not checked here, only the pipeline).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgepose.cli.main import main as cli
from edgepose.pipelines.jsonl import validate_record
from spawn_helpers import default_sigint, wait_until

REPO = Path(__file__).resolve().parents[1]
VIDEOS = ["single_face.mp4", "no_face.mp4", "head-pose-face-detection-female.mp4",
          "head-pose-face-detection-male.mp4", "WolfgangLanger_Pexels.mp4", "face_noface.mov",
          "noface_face.mov", "multi_face_classroom.mp4"]
FAST_ARGS = ["--detector", "yunet", "--every", "3", "--quiet", "--threads", "1"]


_EXPORT = """
import sys, torch
from edgepose.export import export_onnx
from edgepose.models import create_model
for path, size in zip(sys.argv[1::2], sys.argv[2::2]):
    torch.manual_seed(0)
    model = create_model("mobilenetv3_small", head="6d", input_size=int(size)).eval()
    export_onnx(model, path, opset=17, simplify=False)  # the fast TorchScript exporter
"""


def _export(model_dir: Path, sizes: dict[str, int]) -> dict[str, Path]:
    # In a fresh interpreter: in a pytest process that already ran GStreamer pipelines the
    # TorchScript exporter was seen to abort (pybind11::stop_iteration), so keep them apart.
    paths = {name: model_dir / f"{name}.onnx" for name in sizes}
    args = [str(a) for name in sizes for a in (paths[name], sizes[name])]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", _EXPORT, *args], check=True, env=env, cwd=REPO, capture_output=True)
    return paths


def _nan_copy(src: Path, dst: Path) -> Path:
    """Same model with NaN added to both outputs (what a broken INT8 calibration can produce)."""
    import onnx
    from onnx import helper

    m = onnx.load(str(src))
    nan = helper.make_tensor("edgepose_nan", onnx.TensorProto.FLOAT, [], [float("nan")])
    m.graph.initializer.append(nan)
    for out in m.graph.output:
        raw = out.name + "_before_nan"
        for node in m.graph.node:
            node.output[:] = [raw if o == out.name else o for o in node.output]
        m.graph.node.append(helper.make_node("Add", [raw, "edgepose_nan"], [out.name]))
    onnx.save(m, str(dst))
    shutil.copy(str(src) + ".json", str(dst) + ".json")
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("pose_models")
    paths = _export(d, {"pose": 128, "pose96": 96})
    paths["nan"] = _nan_copy(paths["pose"], d / "nan_128.onnx")
    return paths


@pytest.fixture(scope="module")
def yunet(data_file):
    return data_file("detectors/yunet/yunet_s_320_320.onnx")


def _cv2_count(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n


def _video_size(path) -> tuple[int, int, int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    ok, img = cap.read()
    cap.release()
    assert ok, f"{path} does not decode"
    return img.shape


def _read_jsonl(path: Path) -> tuple[dict, list[dict], dict]:
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "summary"
    frames = [r for r in lines if r["type"] == "frame"]
    for r in frames:
        validate_record(r)
    pts = [r["pts_ns"] for r in frames]
    assert all(b > a for a, b in zip(pts, pts[1:])), "pts must increase strictly"
    assert [r["frame"] for r in frames] == list(range(len(frames)))
    return lines[0], frames, lines[-1]


def _run(tmp_path, source, models, yunet, *extra, model="pose", name="out"):
    out, meta = tmp_path / f"{name}.mp4", tmp_path / f"{name}.jsonl"
    rc = cli(["run", str(source), "--model", str(models[model]), "--detector-model", str(yunet),
              "--output", str(out), "--jsonl", str(meta), *FAST_ARGS, *extra])
    return rc, out, meta


@pytest.mark.parametrize("name", [v for v in VIDEOS if v != "multi_face_classroom.mp4"])
def test_run_every_shared_video(tmp_path, data_file, models, yunet, name):
    video = data_file(f"videos/{name}")
    rc, out, meta = _run(tmp_path, video, models, yunet)
    assert rc == 0
    header, frames, summary = _read_jsonl(meta)
    assert header["runtime"]["detector"]["every"] == 3 and header["runtime"]["pose"]["model"] == str(models["pose"])
    n = _cv2_count(video)
    assert len(frames) == n == summary["frames"] == summary["frames_written"]
    assert _cv2_count(out) == n
    assert _video_size(out)[:2] == _video_size(video)[:2]
    stages = summary["latency_ms"]
    for stage in ("decode", "detect", "track", "pose", "smooth", "overlay", "encode", "total"):
        assert stages[stage]["n"] == n and 0 <= stages[stage]["p50"] <= stages[stage]["p99"]
    faces = [len(r["faces"]) for r in frames]
    if name == "no_face.mp4":
        assert sum(faces) == 0  # negative clip: empty face lists, no crash
    elif name in ("single_face.mp4", "WolfgangLanger_Pexels.mp4"):
        assert sum(f >= 1 for f in faces) >= 0.8 * n
        f = next(face for r in frames for face in r["faces"] if face["valid"])
        R = np.array(f["R"])
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-4)
    elif name == "face_noface.mov":  # the face is lost after the cut at frame ~72
        assert any(faces[:60]) and not any(faces[100:])
    elif name == "noface_face.mov":  # and found after the cut at frame ~96
        assert not any(faces[:80]) and any(faces[110:])


def test_run_classroom_many_faces(tmp_path, data_file, models, yunet):
    video = data_file("videos/multi_face_classroom.mp4")
    stats = tmp_path / "stats.json"
    rc, out, meta = _run(tmp_path, video, models, yunet, "--max-frames", "40", "--async-encode", "--stats", str(stats))
    assert rc == 0
    _, frames, summary = _read_jsonl(meta)
    assert json.loads(stats.read_text()) == summary  # the sidecar holds the same summary record
    assert len(frames) == 40 == _cv2_count(out)
    assert max(len(r["faces"]) for r in frames) >= 2
    for r in frames:
        ids = [f["track_id"] for f in r["faces"]]
        assert len(ids) == len(set(ids))


def test_run_classroom_every_frame(tmp_path, data_file, models, yunet):
    """The eighth shared video in full (329 frames, a classroom of faces): counted, validated, decoded."""
    video = data_file("videos/multi_face_classroom.mp4")
    rc, out, meta = _run(tmp_path, video, models, yunet)
    assert rc == 0
    _, frames, summary = _read_jsonl(meta)
    n = _cv2_count(video)
    assert len(frames) == n == summary["frames"] == summary["frames_written"] == _cv2_count(out)
    assert sum(len(r["faces"]) >= 2 for r in frames) >= 0.5 * n


def test_run_reports_progress_and_fps_on_stderr(tmp_path, data_file, models, yunet, capfd):
    """Without --quiet: a progress bar with the running FPS, then the per-stage summary, all on stderr
    (stdout stays free for `--dms-events -`)."""
    video = data_file("videos/single_face.mp4")
    out, meta = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    args = [a for a in FAST_ARGS if a != "--quiet"]
    rc = cli(["run", str(video), "--model", str(models["pose"]), "--detector-model", str(yunet),
              "--output", str(out), "--jsonl", str(meta), "--max-frames", "24", *args])
    assert rc == 0
    captured = capfd.readouterr()
    assert "24/" in captured.err and "frame" in captured.err and "fps=" in captured.err
    assert "FPS end to end" in captured.err and captured.out == ""
    for stage in ("decode", "detect", "track", "pose", "overlay", "encode"):
        assert stage in captured.err


@pytest.mark.parametrize("uri, shape", [
    ("test://smpte?width=321&height=241&num=8", (242, 322, 3)),  # odd: padded rows in, even out
    ("test://ball?width=640&height=360&num=8&format=GRAY8", (360, 640, 3)),  # IR: 1 channel in
    ("test://ball?width=320&height=240&num=8&format=GRAY8&no-overlay", (240, 320, 3)),  # ... without drawing
    ("test://smpte?width=3840&height=2160&num=3", (2160, 3840, 3)),  # 4K
])
def test_run_test_sources(tmp_path, models, yunet, uri, shape):
    extra = ["--no-overlay"] if uri.endswith("&no-overlay") else []
    uri = uri.replace("&no-overlay", "")
    rc, out, meta = _run(tmp_path, uri, models, yunet, *extra)
    assert rc == 0
    header, frames, summary = _read_jsonl(meta)
    num = int(uri.split("num=")[1].split("&")[0])
    assert len(frames) == num == _cv2_count(out)
    assert _video_size(out) == shape
    assert header["format"] == ("GRAY8" if "GRAY8" in uri else "BGR")


def test_run_other_input_size_and_gray_faces(tmp_path, data_file, models, yunet):
    """A 96-px model on the same video; the face crops follow the model's metadata."""
    video = data_file("videos/single_face.mp4")
    rc, _, meta = _run(tmp_path, f"file://{video}?format=GRAY8", models, yunet, "--max-frames", "12", model="pose96")
    assert rc == 0
    _, frames, _ = _read_jsonl(meta)
    assert len(frames) == 12 and any(f["valid"] for r in frames for f in r["faces"])


def test_run_nan_model(tmp_path, data_file, models, yunet, capsys):
    video = data_file("videos/single_face.mp4")
    rc, out, meta = _run(tmp_path, video, models, yunet, "--max-frames", "6", model="nan")
    assert rc == 0
    _, frames, _ = _read_jsonl(meta)
    faces = [f for r in frames for f in r["faces"]]
    assert faces and all(not f["valid"] and f["yaw"] is None and f["R"][0][0] is None for f in faces)
    capsys.readouterr()
    rc, out, meta = _run(tmp_path, video, models, yunet, "--max-frames", "6", "--set", "pose.on_nan=raise",
                         model="nan", name="raise")
    err = capsys.readouterr().err
    assert rc == 2 and "non-finite" in err and "Traceback" not in err
    _, frames, summary = _read_jsonl(meta)  # what ran before the error is kept and closed
    assert summary["frames"] == len(frames)


def test_run_bad_files(tmp_path, models, yunet, capsys):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    ok = tmp_path / "ok.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(ok)], check=True)
    data = ok.read_bytes()
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 30000, np.uint8).tobytes())
    (tmp_path / "codec.mp4").write_bytes(data.replace(b"avc1", b"edgQ"))
    cases = {"missing.mp4": "not found", "zero.mp4": "empty", "corrupt.mp4": "corrupt",
             "codec.mp4": "unsupported"}
    for name, words in cases.items():
        rc, _, _ = _run(tmp_path, tmp_path / name, models, yunet, name=name)
        err = capsys.readouterr().err
        assert rc == 2, (name, err)
        assert err.startswith("error: ") and name in err and words in err and "Traceback" not in err


def test_run_observers_and_bad_flags(tmp_path, models, yunet, capsys):
    from edgepose.pipelines import run_pipeline
    from edgepose.runtime import FrameProcessor

    seen = []

    class Observer:
        closed = False

        def __call__(self, result):
            seen.append(len(result.faces))
            return [f"frame {result.frame_index}"]

        def close(self):
            Observer.closed = True

    with FrameProcessor.from_options(model=models["pose"], detector="yunet", detector_model=yunet) as proc:
        s = run_pipeline("test://ball?num=5", proc, jsonl=tmp_path / "o.jsonl", observers=[Observer()],
                         progress=False, output=tmp_path / "o.mp4")
    _, frames, _ = _read_jsonl(tmp_path / "o.jsonl")
    assert s.frames == 5 == len(seen) and Observer.closed
    assert [r["status"] for r in frames] == [[f"frame {i}"] for i in range(5)]
    for args, words in [(["--every", "0"], "--every"), (["--max-frames", "0"], "--max-frames"),
                        (["--platform", "jetson", "--max-frames", "1"], None)]:
        try:  # bad numbers fail while parsing (argparse exits 2), other errors as one line (rc 2)
            rc = cli(["run", "csi://0" if "jetson" in args else "test://ball?num=2", "--model", str(models["pose"]),
                      "--detector-model", str(yunet), "--quiet", *args])
        except SystemExit as exc:
            rc = exc.code
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err, err
        assert words is None or words in err


def _spawn(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "edgepose.cli.main", "run", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def _frame_lines(path: Path) -> int:
    return path.read_text().count('"type":"frame"') if path.exists() else 0


def test_sigint_finalises_outputs(tmp_path, models, yunet):
    out, meta = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    proc = _spawn(["test://ball?width=320&height=240&fps=30&live=1", "--model", str(models["pose"]),
                   "--detector-model", str(yunet), "--output", str(out), "--jsonl", str(meta), "--quiet"])
    try:
        assert wait_until(lambda: _frame_lines(meta) >= 15, 60, poll_s=0.1), proc.stderr.read() if proc.poll() is not None else ""
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    _, frames, summary = _read_jsonl(meta)
    assert summary["interrupted"] and summary["frames"] == len(frames) >= 15
    age = summary["latency_ms"]["capture_to_output"]  # live source: frame age when results were out
    assert 0 <= age["p50"] <= age["p99"] < 5000 and age["p50"] >= summary["latency_ms"]["pose"]["p50"]
    assert _cv2_count(out) == summary["frames_written"] == len(frames)  # EOS wrote a complete file


def test_rtsp_output_with_local_client(tmp_path, models, yunet):
    from edgepose.pipelines.gst import gst

    Gst = gst().Gst
    port = 18554 + os.getpid() % 1000
    proc = _spawn(["test://ball?width=320&height=240&fps=30&live=1", "--model", str(models["pose"]),
                   "--detector-model", str(yunet), "--rtsp-port", str(port), "--quiet",
                   "--jsonl", str(tmp_path / "r.jsonl")])
    got = []
    try:
        assert wait_until(lambda: _frame_lines(tmp_path / "r.jsonl") >= 3, 60, poll_s=0.1)
        client = Gst.parse_launch(f"rtspsrc location=rtsp://127.0.0.1:{port}/edgepose latency=0 ! rtph264depay ! "
                                  f"avdec_h264 ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false")
        sink = client.get_by_name("sink")
        client.set_state(Gst.State.PLAYING)
        end = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < end:
            sample = sink.try_pull_sample(Gst.SECOND)
            if sample is not None:
                caps = sample.get_caps().get_structure(0)
                got.append((caps.get_value("width"), caps.get_value("height")))
        client.set_state(Gst.State.NULL)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(got) >= 5 and set(got) == {(320, 240)}
    assert proc.returncode == 0


def test_display_branch_and_headless_error(tmp_path, models, yunet, monkeypatch, capsys):
    """Without a graphical session --display fails cleanly; with one, the tee feeds both the
    window and the MP4 (a template folder swaps the window for a fakesink, as a deployment may)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rc = cli(["run", "test://ball?num=3", "--model", str(models["pose"]), "--detector-model", str(yunet),
              "--display", "--quiet", "--platform", "desktop"])
    err = capsys.readouterr().err
    assert rc == 2 and "--display needs a graphical session" in err
    import yaml

    from edgepose.pipelines.templates import TEMPLATE_DIR

    tpl = yaml.safe_load((TEMPLATE_DIR / "desktop.yaml").read_text())
    tpl["sinks"]["display"] = "videoconvert ! fakesink name=window sync=false"
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "desktop.yaml").write_text(yaml.safe_dump(tpl))
    monkeypatch.setenv("EDGEPOSE_PIPELINE_TEMPLATES", str(tmp_path / "tpl"))
    monkeypatch.setenv("DISPLAY", ":0")
    rc, out, meta = _run(tmp_path, "test://ball?num=12", models, yunet, "--display", "--platform", "desktop")
    assert rc == 0
    _, frames, summary = _read_jsonl(meta)
    assert len(frames) == 12 == summary["frames_written"] == _cv2_count(out)


def test_dms_hook_adds_status_lines(tmp_path, data_file, models, yunet, capsys):
    dms = pytest.importorskip("edgepose.dms")
    if not hasattr(dms, "create_frame_observer"):
        pytest.skip("edgepose.dms.create_frame_observer not available")
    video = data_file("videos/single_face.mp4")
    rc, out, meta = _run(tmp_path, video, models, yunet, "--max-frames", "8", "--dms", "euro-ncap-2023")
    assert rc == 0, capsys.readouterr().err
    _, frames, _ = _read_jsonl(meta)
    assert all(r.get("status") and all(isinstance(s, str) for s in r["status"]) for r in frames)
    rc = cli(["run", str(video), "--model", str(models["pose"]), "--detector-model", str(yunet), "--quiet",
              "--dms", str(tmp_path / "no_such_preset.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "no_such_preset" in err and "Traceback" not in err


def _events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_run_dms_writes_events_end_to_end(tmp_path, data_file, models, yunet, capsys):
    """face_noface.mov: a face for ~2.4 s, then none -> driver_not_visible 2 s after the last face."""
    video = data_file("videos/face_noface.mov")
    events = tmp_path / "events.jsonl"
    rc, _, meta = _run(tmp_path, video, models, yunet, "--dms", str(REPO / "configs/dms/euro-ncap-2023.yaml"),
                       "--dms-events", str(events))
    assert rc == 0, capsys.readouterr().err
    _, frames, _ = _read_jsonl(meta)
    t_last = frames[-1]["pts_ns"] / 1e9
    t_face = max(r["pts_ns"] for r in frames if r["faces"]) / 1e9  # YuNet's last face before the cut
    nv = [e for e in _events(events) if e["type"] == "driver_not_visible"]
    assert [e["phase"] for e in nv] == ["onset", "end"], nv
    onset, end = nv
    assert 1.5 < onset["start"] < 3.5 and onset["start"] <= t_face + 0.2  # the last valid observation
    assert onset["t"] - onset["start"] == pytest.approx(2.0, abs=0.1)  # not_visible_after_s
    assert onset["t"] <= end["t"] <= t_last + 1e-3 and end["details"].get("truncated") is True
    assert "driver_not_visible" in capsys.readouterr().err  # the summary line names it

    # without --dms-events the events land next to --jsonl; --dms-set reaches the preset
    rc, _, meta = _run(tmp_path, video, models, yunet, "--dms", "euro-ncap-2023", "--max-frames", "150",
                       "--dms-set", "availability.not_visible_after_s=1.0", name="next")
    assert rc == 0
    nv = [e for e in _events(tmp_path / "next.dms-events.jsonl") if e["type"] == "driver_not_visible"]
    assert nv[0]["t"] - nv[0]["start"] == pytest.approx(1.0, abs=0.1)


def test_run_dms_flag_errors_and_cleanup(tmp_path, models, yunet, capsys):
    base = ["run", "test://ball?num=3", "--model", str(models["pose"]), "--detector-model", str(yunet), "--quiet"]
    cases = [(["--mount", "m.yaml"], "add --dms"), (["--dms-set", "vats.window_s=40"], "add --dms"),
             (["--dms", "euro-ncap-2023", "--signals", str(tmp_path / "none.csv")], "--signals file not found"),
             (["--dms", "euro-ncap-2023", "--dms-set", "vats.window_s=5"], "window_s"),
             (["--dms", "euro-ncap-2023", "--dms-events", str(tmp_path / "no/dir/e.jsonl")], "does not exist"),
             (["--dms", "euro-ncap-2023", "--jsonl", str(tmp_path / "a.jsonl"), "--dms-events",
               str(tmp_path / "a.jsonl")], "own file")]
    for extra, words in cases:
        rc = cli(base + extra)
        err = capsys.readouterr().err
        assert rc == 2 and words in err and "Traceback" not in err, (extra, err)
    # the model fails to load after the observer opened its events file: the file is closed, complete
    events = tmp_path / "early.jsonl"
    rc = cli(["run", "test://ball?num=3", "--model", str(tmp_path / "missing.onnx"), "--quiet",
              "--dms", "euro-ncap-2023", "--dms-events", str(events)])
    assert rc == 2 and "missing.onnx" in capsys.readouterr().err
    assert events.is_file() and events.read_text() == ""


def test_bench_script_smoke(tmp_path, models, yunet):
    from edgepose.cli.main import main as cli

    out = tmp_path / "bench.json"
    assert cli(["bench", "pipeline", "test://ball?width=320&height=240&num=12", "--model", str(models["pose"]), "--detector-model",
                  str(yunet), "--repeat", "2", "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res["fps"]) == 2 and all(f > 0 for f in res["fps"])
    assert res["latency_ms"]["total"]["n"] == 12 and "encode" in res["latency_ms"]
