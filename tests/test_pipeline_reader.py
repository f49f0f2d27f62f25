"""Frame pulling: row strides, GRAY8, 4K, every frame of real videos, and bad files."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from edgepose.errors import SourceError
from edgepose.pipelines.frames import buffer_to_array
from edgepose.pipelines.gst import gst
from edgepose.pipelines.reader import VideoSource
from edgepose.pipelines.sources import parse_source

# every other shared video is counted end to end by tests/test_run_cli.py; these two are the
# special cases: an MP4 edit list that starts between frames, and the big 720p clip
VIDEOS = ["no_face.mp4", "multi_face_classroom.mp4"]


def _frames(uri: str) -> list:
    return list(VideoSource(parse_source(uri)))


def _cv2_count(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize("fmt, bpp", [("BGR", 3), ("GRAY8", 1)])
def test_buffer_to_array_drops_row_padding(fmt, bpp):
    """A hand-made padded buffer: the padding bytes (255) must never reach the frame."""
    Gst = gst().Gst
    h, w = 5, 7
    stride = ((w * bpp + 3) // 4) * 4 + 8  # aligned and then some extra padding
    img = np.random.default_rng(0).integers(0, 200, (h, w * bpp), dtype=np.uint8)
    raw = np.full((h, stride), 255, np.uint8)
    raw[:, : w * bpp] = img
    buf = Gst.Buffer.new_wrapped(raw.tobytes())
    out = buffer_to_array(buf, fmt, w, h, stride)
    assert out.shape == ((h, w, 3) if bpp == 3 else (h, w))
    np.testing.assert_array_equal(out.reshape(h, w * bpp), img)
    assert out.flags.c_contiguous and out.flags.writeable  # an owned copy, valid after unmap
    with pytest.raises(ValueError, match="stride"):
        buffer_to_array(buf, fmt, w, h, w * bpp - 1)


@pytest.mark.parametrize("fmt", ["BGR", "GRAY8"])
def test_odd_width_source_pixels_match_unpadded_reference(fmt):
    """321x241: BGR rows are padded to 964 bytes, GRAY8 rows to 324.  Compare the pixels with the
    same videotestsrc frames pulled in a 4-byte format whose rows are never padded."""
    Gst = gst().Gst
    frames = _frames(f"test://smpte?width=321&height=241&num=2&format={fmt}")
    assert len(frames) == 2
    got = frames[1].image
    assert got.shape == ((241, 321, 3) if fmt == "BGR" else (241, 321))
    ref_fmt = "BGRx" if fmt == "BGR" else "GRAY8"
    pipe = Gst.parse_launch(f"videotestsrc pattern=smpte num-buffers=2 ! video/x-raw,width=321,height=241,"
                            f"format={ref_fmt},framerate=30/1 ! appsink name=sink sync=false")
    sink = pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    try:
        sink.try_pull_sample(5 * Gst.SECOND)
        sample = sink.try_pull_sample(5 * Gst.SECOND)
        buf = sample.get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        data = np.frombuffer(m.data, np.uint8).copy()
        buf.unmap(m)
    finally:
        pipe.set_state(Gst.State.NULL)
    if fmt == "BGR":
        assert data.size == 321 * 241 * 4
        ref = data.reshape(241, 321, 4)[..., :3]
        np.testing.assert_array_equal(got, ref)
    else:  # no unpadded 1-byte format exists: slice the raw buffer by hand (rows aligned to 4 bytes)
        assert data.size == 324 * 241
        ref = data.reshape(241, 324)[:, :321]
        np.testing.assert_array_equal(got, ref)
        assert not np.array_equal(got.ravel(), data[: 321 * 241])  # ignoring the stride would be wrong
    assert got.std() > 10  # a real pattern, not a blank frame


def test_gray8_stays_single_channel_and_4k():
    gray = _frames("test://ball?width=640&height=360&num=3&format=GRAY8")
    assert [f.image.shape for f in gray] == [(360, 640)] * 3
    big = _frames("test://smpte?width=3840&height=2160&num=2")
    assert [f.image.shape for f in big] == [(2160, 3840, 3)] * 2
    assert [f.index for f in big] == [0, 1] and big[1].pts_ns > big[0].pts_ns


@pytest.mark.parametrize("name", VIDEOS)
def test_every_frame_of_real_videos(data_file, name):
    """No dropped or extra frames: the count equals OpenCV's (FFmpeg), pts strictly increase."""
    path = data_file(f"videos/{name}")
    src = VideoSource(parse_source(str(path)))
    pts, shapes = [], set()
    for f in src:
        pts.append(f.pts_ns)
        shapes.add(f.image.shape)
    assert len(pts) == _cv2_count(path)
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert len(shapes) == 1 and next(iter(shapes))[2] == 3
    assert src.fps and src.fps > 1


def _make_h264(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg)")
    out = tmp_path / "ok.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "1",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def test_bad_files_raise_source_errors(tmp_path):
    ok = _make_h264(tmp_path)
    assert len(_frames(str(ok))) == 10
    data = ok.read_bytes()
    cases = {}
    (tmp_path / "random.mp4").write_bytes(os.urandom(40000))
    cases["random.mp4"] = "cannot be decoded.*corrupt"
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    cases["truncated.mp4"] = "cannot be decoded.*corrupt"
    # a real MP4 whose video track declares a codec no GStreamer plugin decodes
    assert data.count(b"avc1") >= 1
    (tmp_path / "unknown_codec.mp4").write_bytes(data.replace(b"avc1", b"edgQ"))
    cases["unknown_codec.mp4"] = "no GStreamer decoder.*unsupported"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac",
                    str(tmp_path / "audio_only.mp4")], check=True)
    cases["audio_only.mp4"] = "has no video stream"
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases["empty.mp4"] = "empty \\(0 bytes\\)"
    cases["missing.mp4"] = "not found"
    for name, pattern in cases.items():
        with pytest.raises(SourceError, match=pattern) as exc:
            _frames(str(tmp_path / name))
        assert name in str(exc.value)


def test_recording_cut_off_before_its_index_fails_at_once_and_a_faststart_one_plays(tmp_path):
    """A recorder writes the MP4 index (moov) last: power loss leaves ftyp + mdat only, and GStreamer
    would wait 30 s for an index that never comes. With the index up front (faststart) the frames
    before the cut still play."""
    import time

    ok = _make_h264(tmp_path)
    data = ok.read_bytes()
    assert data.index(b"mdat") < data.index(b"moov")  # ffmpeg's default layout: index last
    cut = tmp_path / "power_loss.mp4"
    cut.write_bytes(data[: data.index(b"moov") - 4])  # everything up to the index
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="without its 'moov' index") as exc:
        _frames(str(cut))
    assert time.monotonic() - t0 < 5 and "power_loss.mp4" in str(exc.value)

    fast = tmp_path / "fast.mp4"  # 30 frames, index first
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(fast)], check=True)
    fdata = fast.read_bytes()
    assert fdata.index(b"moov") < fdata.index(b"mdat")
    (tmp_path / "fast_cut.mp4").write_bytes(fdata[: len(fdata) * 2 // 3])
    src = VideoSource(parse_source(str(tmp_path / "fast_cut.mp4")))
    assert 0 < sum(1 for _ in src) < 30
    end, declared = src.ended_early_s  # the cut is reported, not silent
    assert declared == pytest.approx(3.0, abs=0.05) and end < declared - 0.5
    whole = VideoSource(parse_source(str(fast)))
    assert sum(1 for _ in whole) == 30 and whole.ended_early_s is None


_RTSP_SERVER = r"""
import sys, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
server = GstRtspServer.RTSPServer.new(); server.set_service(sys.argv[1])
f = GstRtspServer.RTSPMediaFactory.new(); f.set_shared(True)
f.set_launch("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 ! "
             "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96 )")
server.get_mount_points().add_factory("/cam", f)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


def _start_rtsp_server(port: int) -> subprocess.Popen:
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _RTSP_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_rtsp_source_reconnects_after_server_restart():
    """Kill the camera's server mid-stream, restart it: frames resume, the timeline stays monotonic."""
    import threading

    port = 19554 + os.getpid() % 1000
    server = _start_rtsp_server(port)
    restarted = {}

    def restart():
        server.kill()
        server.wait()
        import time

        time.sleep(1.0)
        restarted["proc"] = _start_rtsp_server(port)

    src = VideoSource(parse_source(f"rtsp://127.0.0.1:{port}/cam"), max_reconnects=8, backoff_s=(0.3, 2.0),
                      stall_timeout_s=1.5)
    frames, killer = [], None
    try:
        for f in src:
            frames.append(f)
            if len(frames) == 10:
                killer = threading.Thread(target=restart)
                killer.start()
            if src.reconnect_count >= 1 and len(frames) >= 20:
                break
            assert len(frames) < 2000, "never reconnected"
    finally:
        src.close()
        if killer is not None:
            killer.join()
        for p in (server, restarted.get("proc")):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert src.reconnect_count >= 1
    pts = [f.pts_ns for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert {f.image.shape for f in frames} == {(120, 160, 3)}


def test_rtsp_source_gives_up_with_clear_error():
    port = 19554 + (os.getpid() + 500) % 1000  # nothing listens here
    src = VideoSource(parse_source(f"rtsp://127.0.0.1:{port}/none"), max_reconnects=1, backoff_s=(0.1, 0.1),
                      first_frame_timeout_s=5)
    with pytest.raises(SourceError, match="RTSP source rtsp://127.0.0.1.*failed"):
        list(src)
