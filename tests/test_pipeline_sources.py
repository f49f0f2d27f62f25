"""URI parsing and template compilation (no GStreamer needed except the parse check)."""
from __future__ import annotations

import pytest

from edgepose.errors import SourceError, UserError
from edgepose.pipelines.sources import check_file_source, parse_source
from edgepose.pipelines.templates import detect_platform, output_branches, rtsp_launch, source_pipeline


@pytest.mark.parametrize("uri, kind, location", [
    ("videos/clip.mp4", "file", "videos/clip.mp4"),
    ("file:///data/my%20clip.mp4", "file", "/data/my clip.mp4"),
    ("v4l2:///dev/video2", "v4l2", "/dev/video2"),
    ("csi://1", "csi", "1"),
    ("rtsp://user:pw@10.0.0.5:8554/cam?channel=2", "rtsp", "rtsp://user:pw@10.0.0.5:8554/cam?channel=2"),
    ("test://ball?width=320&height=240&fps=15&num=9", "test", "ball"),
])
def test_parse_source_kinds(uri, kind, location):
    spec = parse_source(uri)
    assert spec.kind == kind and spec.location == location
    assert spec.live == (kind in ("v4l2", "csi", "rtsp"))
    assert spec.reconnects == (kind in ("v4l2", "rtsp"))


def test_parse_test_options_and_gray():
    spec = parse_source("test://ball?width=321&height=241&fps=15&num=9&format=GRAY8&live=1")
    assert (spec.width, spec.height, spec.fps, spec.num_buffers, spec.format, spec.live) == (321, 241, 15, 9, "GRAY8", True)
    assert parse_source("v4l2:///dev/video0?format=gray&width=640").format == "GRAY8"


@pytest.mark.parametrize("uri, words", [
    ("", "empty source"),
    ("http://example.com/a.mp4", "unsupported source scheme"),
    ("test://nosuchpattern", "unknown test pattern"),
    ("test://ball?width=abc", "must be an integer"),
    ("test://ball?colour=red", "unknown option"),
    ("v4l2:///dev/video0?format=NV12", "format=BGR or format=GRAY8"),
    ("csi://front", "sensor id"),
])
def test_parse_source_errors(uri, words):
    with pytest.raises(SourceError, match=words):
        parse_source(uri)


def test_check_file_source_errors(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        check_file_source(parse_source(str(tmp_path / "missing.mp4")))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty \\(0 bytes\\)"):
        check_file_source(parse_source(str(empty)))
    with pytest.raises(SourceError, match="is a directory"):
        check_file_source(parse_source(str(tmp_path)))


def test_missing_camera_fails_at_once():
    from edgepose.pipelines.sources import check_device_source

    with pytest.raises(SourceError, match="camera /dev/video_edgepose_missing not found"):
        check_device_source(parse_source("v4l2:///dev/video_edgepose_missing"))


def test_platform_detection(tmp_path):
    assert detect_platform(tmp_path / "nv_tegra_release") == "desktop"
    marker = tmp_path / "nv_tegra_release"
    marker.write_text("# R36 (release), REVISION: 4.0\n")
    assert detect_platform(marker) == "jetson"


@pytest.mark.parametrize("platform", ["desktop", "jetson"])
def test_templates_compile_for_every_source(platform):
    uris = ["/tmp/a b.mp4", "v4l2:///dev/video0?width=640&height=480&fps=30&format=GRAY8",
            "rtsp://127.0.0.1:8554/x", "test://ball?num=3"] + (["csi://0"] if platform == "jetson" else [])
    for uri in uris:
        s = source_pipeline(parse_source(uri), platform)
        assert s.rstrip().endswith("emit-signals=false") and "appsink name=sink" in s
        assert "{" not in s and "}" not in s, s
    file_line = source_pipeline(parse_source("/tmp/a b.mp4"), platform)
    assert 'location="/tmp/a b.mp4"' in file_line and "drop=false" in file_line
    live_line = source_pipeline(parse_source("rtsp://127.0.0.1:8554/x"), platform)
    assert "drop=true max-buffers=1 sync=false" in live_line
    gray = source_pipeline(parse_source("v4l2:///dev/video0?format=GRAY8"), platform)
    assert "format=GRAY8" in gray
    if platform == "jetson":
        assert "nvvidconv" in file_line and "nvarguscamerasrc sensor-id=0" in source_pipeline(parse_source("csi://0"), platform)
    out = output_branches(platform, "/tmp/o.mp4", True, 640, 360, 30000 / 1001)
    assert "mp4mux" in out and "tee" in out and "30000/1001" in out
    assert ("nvv4l2h264enc" in out) == (platform == "jetson") and ("x264enc" in out) == (platform == "desktop")
    assert rtsp_launch(platform, 640, 360, 30).startswith("( appsrc name=src") and "pay0" in rtsp_launch(platform, 640, 360, 30)


def test_csi_needs_jetson():
    with pytest.raises(SourceError, match="csi:// sources are not available on the desktop"):
        source_pipeline(parse_source("csi://0"), "desktop")
    with pytest.raises(UserError, match="unknown platform"):
        source_pipeline(parse_source("test://ball"), "android")


def test_desktop_templates_parse_with_gstreamer(tmp_path):
    """Every desktop launch line is valid gst-launch syntax with elements installed here."""
    from edgepose.pipelines.gst import gst

    Gst = gst().Gst
    for uri in [str(tmp_path / "x.mp4"), "rtsp://127.0.0.1:1/x", "test://ball?num=1", "v4l2:///dev/video0"]:
        pipe = Gst.parse_launch(source_pipeline(parse_source(uri), "desktop"))
        assert pipe.get_by_name("sink") is not None
    out = Gst.parse_launch(output_branches("desktop", str(tmp_path / "o.mp4"), False, 64, 48, 30))
    assert out.get_by_name("src") is not None


def test_image_folders_and_patterns(tmp_path):
    """A folder (or ``folder/PATTERN``) is an ``images`` source: stills only, one level, natural order."""
    from edgepose.pipelines.sources import check_image_source

    d = tmp_path / "photos"
    d.mkdir()
    for name in ("img10.JPG", "img2.png", "Img1.jpeg", "img3.TIFF", "notes.txt", "clip.mp4"):
        (d / name).write_bytes(b"x")
    (d / "sub").mkdir()
    (d / "sub" / "img0.jpg").write_bytes(b"x")
    spec = parse_source(str(d))
    assert spec.kind == "images" and spec.independent_frames and not spec.is_file and not spec.live
    assert [p.name for p in check_image_source(spec)] == ["Img1.jpeg", "img2.png", "img3.TIFF", "img10.JPG"]
    gray = parse_source(f"file://{d}?format=gray")
    assert gray.kind == "images" and gray.format == "GRAY8"
    pat = parse_source(str(d / "img*.png"))
    assert pat.kind == "images" and pat.location == str(d) and pat.pattern == "img*.png"
    assert [p.name for p in check_image_source(pat)] == ["img2.png"]
    assert parse_source(str(d / "img2.png")).is_still and not parse_source("clip.mp4").is_still
    with pytest.raises(SourceError, match="only the file-name part"):
        parse_source(str(tmp_path / "*" / "*.png"))
    with pytest.raises(SourceError, match="matches '\\*.bmp'"):
        check_image_source(parse_source(str(d / "*.bmp")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        check_image_source(parse_source(str(empty)))
    with pytest.raises(SourceError, match="not through a GStreamer pipeline"):
        source_pipeline(spec, "desktop")
