"""What a run reports is what happened (issue 16, item 6): missing frames of a damaged file are counted,
timestamps match FFmpeg/OpenCV on MP4 edit lists, stream-copy cuts play, stills report their faces, the
header names the detector that ran."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess

import numpy as np
import pytest

from edgepose.pipelines.reader import VideoSource
from edgepose.pipelines.sources import parse_source

cv2 = pytest.importorskip("cv2")


def _opencv(path) -> list[float]:
    """OpenCV's (FFmpeg's) frame times in ms."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while cap.read()[0]:
        out.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    cap.release()
    return out


def _ours(path) -> tuple[VideoSource, list[float]]:
    src = VideoSource(parse_source(str(path)))
    return src, [f.pts_ns / 1e6 for f in src]


@pytest.mark.parametrize("clip", ["single_face.mp4", "no_face.mp4"])
def test_pts_match_opencv_on_edit_list_files(data_file, clip):
    """These files carry MP4 edit lists (B-frame delay): pts_ns used to be 67 / 208 ms ahead."""
    path = data_file(f"videos/{clip}")
    _, ours = _ours(path)
    ref = _opencv(path)
    assert len(ours) == len(ref)
    assert np.abs(np.array(ours) - np.array(ref)).max() < 0.01  # ms


def test_stream_copy_cut_is_accepted(data_file, tmp_path):
    """`ffmpeg -ss T -c copy` writes an edit list that starts past the keyframe: GStreamer 1.22's qtdemux
    ends such a file without a frame (it was refused as undecodable); it now plays, frames and times as
    FFmpeg's."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    cut = tmp_path / "cut.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "1.5", "-i", str(data_file("videos/single_face.mp4")),
                    "-t", "0.5", "-c", "copy", str(cut)], check=True)
    src, ours = _ours(cut)
    ref = _opencv(cut)
    assert len(ours) == len(ref) >= 10 and (src.width, src.height) == (640, 360)
    assert np.abs(np.array(ours) - np.array(ref)).max() < 0.01


def test_damaged_file_counts_its_missing_frames(data_file, tmp_path, caplog):
    """Bytes overwritten in the middle of a copy: the frames the decoder loses are counted and warned
    about (the run used to end with rc 0 and no word)."""
    src_path = data_file("videos/single_face.mp4")
    bad = tmp_path / "damaged.mp4"
    shutil.copyfile(src_path, bad)
    data = bytearray(bad.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 20000] = np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="edgepose.pipelines.reader"):
        src, ours = _ours(bad)
    total = len(_opencv(src_path))  # 72
    assert 0 < len(ours) < total
    assert src.dropped_frames == total - len(ours)  # every lost frame accounted for
    assert any("frames missing" in r.getMessage() for r in caplog.records)
    clean, _ = _ours(src_path)
    assert clean.dropped_frames == 0 and clean.gaps == 0


def test_still_image_reports_its_face_and_the_detector_that_ran(data_file, tmp_path, monkeypatch):
    """A single JPEG is one frame: its face is reported on that frame (the tracker wanted two hits).
    With no YuNet model in the cache the run falls back to Haar, and the header says so."""
    from edgepose.cli.main import main as cli

    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "empty-cache"))
    meta = tmp_path / "still.jsonl"
    rc = cli(["run", str(data_file("videos/single_face.jpg")), "--detector", "yunet", "--quiet", "--threads", "1",
              "--jsonl", str(meta)])
    assert rc == 0
    lines = [json.loads(s) for s in meta.read_text().splitlines()]
    header, frames = lines[0], [r for r in lines if r["type"] == "frame"]
    assert header["detector"] == "haar" and header["detector_requested"] == "yunet"
    assert header["detector_model"].endswith(".xml")
    assert len(frames) == 1 and len(frames[0]["faces"]) == 1
