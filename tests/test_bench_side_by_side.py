"""``edgepose-bench side-by-side``: edgepose's per-frame stages beside MediaPipe Face Mesh, on a real clip.

Small frame counts keep it quick; the MediaPipe row needs its runtime (``mediapipe`` 0.10.x and
``attrs``) and is checked only where it imports.
"""
from __future__ import annotations

import json

import pytest

from edgepose.benchmarks.mediapipe_peer import unavailable_reason
from edgepose.benchmarks.side_by_side import MEDIAPIPE, Variant, bench_clip, decode_clip, edgepose_variants, markdown
from edgepose.cli.main import main
from edgepose.errors import UserError

FRAMES = 16
CLIP = "videos/single_face.mp4"
BUILD = {"model": None, "detector": "yunet", "detector_model": None, "detector_size": None, "threads": 1,
         "overrides": []}


# at collection, before any test of the session runs a GStreamer pipeline: importing mediapipe (its
# solutions import matplotlib) after one has run crashed in matplotlib's FreeType module here
_MP_REASON = unavailable_reason()


@pytest.fixture(scope="module")
def mp_reason():
    return _MP_REASON


@pytest.fixture(scope="module")
def clip(data_file, mp_reason):
    return decode_clip(str(data_file(CLIP)), FRAMES)


@pytest.fixture(scope="module")
def report(clip, mp_reason):
    variants = edgepose_variants([4], [["every2", "detector.every=2"]])
    return bench_clip(clip, variants, rounds=2, warmup=2, frames=None, build=BUILD, mp_unavailable=mp_reason,
                      log=lambda s: None)


def test_decode_keeps_the_clip_in_memory(clip):
    assert len(clip.bgr) == len(clip.rgb) == len(clip.pts_ns) == FRAMES
    assert clip.size == (640, 360)
    assert clip.pts_ns == sorted(clip.pts_ns) and clip.pts_ns[0] == 0
    assert (clip.rgb[0][..., 0] == clip.bgr[0][..., 2]).all()  # RGB is the BGR frame, channels swapped


def test_edgepose_rows_run_the_run_processor(report):
    rows = report["rows"]
    assert {"edgepose", "edgepose every=4", "edgepose every2"} <= set(rows)
    for name in ("edgepose", "edgepose every=4", "edgepose every2"):
        s = rows[name]
        assert s["frames_timed"] == 2 * FRAMES
        assert s["fps"] > 0 and 0 < s["ms_p50"] <= s["ms_p99"]
        assert s["frames_with_face"] > 0.8  # one face, in view throughout (the first frame: min_hits)
    # the setups are edgepose run's header: the resolved runtime options, --set overrides included
    assert rows["edgepose"]["setup"]["runtime"]["detector"]["every"] == 1
    assert rows["edgepose every2"]["setup"]["runtime"]["detector"]["every"] == 2
    assert rows["edgepose every=4"]["setup"]["runtime"]["pose"]["threads"] == 1
    assert rows["edgepose"]["stage_ms_mean"]["pose"] > 0 and rows["edgepose"]["stage_ms_mean"]["detect"] > 0
    assert rows["edgepose"]["detector_runs_per_frame"] == 1.0
    assert rows["edgepose every=4"]["detector_runs_per_frame"] < 0.7


def test_mediapipe_row_and_agreement(report, mp_reason):
    if mp_reason:
        assert report["skipped"] == {MEDIAPIPE: mp_reason}
        assert "skipped: " + mp_reason in markdown({"clips": [report], "load_average_start": [0, 0, 0],
                                                    "load_average_end": [0, 0, 0], "threads": 1,
                                                    "omp_num_threads": "1"})
        pytest.skip(f"MediaPipe's runtime is not available here: {mp_reason}")
    mp = report["rows"][MEDIAPIPE]
    assert mp["frames_timed"] == 2 * FRAMES and mp["frames_with_face"] == 1.0 and mp["faces_per_frame"] == 1.0
    agr = report["rows"]["edgepose"]["agreement_with_mediapipe"]
    assert agr["frames"] >= FRAMES - 2
    # a near-frontal face: the landmark fit and the pose model agree to a few degrees (a convention
    # slip, e.g. MediaPipe's z sign or the image y axis, would put them tens of degrees apart)
    assert agr["geodesic_median_deg"] < 15
    assert report["rows"]["edgepose"]["fps_ratio_to_mediapipe"] > 0


def test_mediapipe_missing_is_a_skipped_row(clip):
    out = bench_clip(clip, [Variant(MEDIAPIPE, MEDIAPIPE)], rounds=1, warmup=0, frames=2, build=BUILD,
                     mp_unavailable="mediapipe is not installed", log=lambda s: None)
    assert out["rows"] == {} and out["skipped"] == {MEDIAPIPE: "mediapipe is not installed"}


def test_variant_names_must_differ():
    with pytest.raises(UserError, match="share a name"):
        edgepose_variants([3], [["x", "detector.every=2"], ["x", "detector.every=4"]])


def test_cli_rejects_a_variant_without_a_name(data_file, capsys):
    rc = main(["bench", "side-by-side", str(data_file(CLIP)), "--variant", "tracker.min_hits=1"])
    assert rc == 2
    assert "give a name first" in capsys.readouterr().err


def test_cli_bad_override_is_one_line(data_file, capsys):
    rc = main(["bench", "side-by-side", str(data_file(CLIP)), "--no-mediapipe", "--frames", "2", "--rounds", "1",
               "--every", "1", "--set", "tracker.no_such_key=1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no_such_key" in err and "Traceback" not in err


def test_cli_writes_json(data_file, tmp_path, capsys):
    out = tmp_path / "sbs.json"
    rc = main(["bench", "side-by-side", str(data_file(CLIP)), "--no-mediapipe", "--frames", "4", "--rounds", "1",
               "--warmup", "1", "--every", "2", "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert list(rep["clips"][0]["rows"]) == ["edgepose", "edgepose every=2"]
    assert rep["command"].startswith("edgepose bench side-by-side")
    assert "| edgepose every=2 |" in capsys.readouterr().out
