"""edgepose-bench profile --face-sweep (edgepose.runtime.face_cost) and the id switches of the stage profile,
on a few frames of the real multi-face clip with the shipped default model and YuNet."""
from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest

from edgepose.errors import UserError
from edgepose.runtime.face_cost import CROP_VARIANTS, face_cost_sweep, fit_slope, format_face_cost


def test_fit_slope_recovers_a_line_and_refuses_one_point():
    assert fit_slope([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)
    assert math.isnan(fit_slope([2], [1.0])) and math.isnan(fit_slope([2, 2], [1.0, 3.0]))


@pytest.fixture(scope="module")
def inputs(data_file):
    model = str(resources.files("edgepose.assets.models").joinpath("edgepose-default-fp32.onnx"))
    return (str(data_file("videos/multi_face_classroom.mp4")), model,
            str(data_file("detectors/yunet/yunet_s_320_320.onnx")))


def test_face_sweep_reports_every_variant_per_face_count(inputs, tmp_path):
    video, model, yunet = inputs
    out = tmp_path / "sweep.json"
    r = face_cost_sweep(video, model, detector_model=yunet, frames=4, warmup=1, threads=1, max_faces=3,
                        min_frames=2, inner_repeats=2, json_out=str(out))
    assert out.exists() and r["frames"] == 4 and r["inner_repeats"] == 2
    assert [e["k"] for e in r["per_k"]] == [1, 2, 3]  # the clip shows at least 3 faces
    for e in r["per_k"]:
        assert e["n"] == 4 and e["pose"] > 0
        for name in r["variants"]:
            assert e["crop"][name] > 0 and e["total"][name] == pytest.approx(r["detect_ms_p50"] + e["crop_pose"][name])
    assert r["fit_k"] == [1, 2, 3] and all(np.isfinite(list(r["ms_per_extra_face"].values())))
    text = format_face_cost(r)
    assert "ms per extra face" in text and "remap" in text
    with pytest.raises(UserError, match="unknown crop variant"):
        face_cost_sweep(video, model, detector_model=yunet, frames=1, variants=["gpu"])
    assert set(CROP_VARIANTS) >= set(r["variants"])


def test_stage_profile_reports_id_switches(inputs):
    from edgepose.runtime.profile import format_profile, profile_video

    video, model, yunet = inputs
    r = profile_video(video, model=model, detector_model=yunet, frames=10, warmup=0, threads=1)
    s = r["id_switches"]
    assert s["switches"] == s["fragmentations"] + s["swaps"] and s["ids"] >= 3
    assert "id switches" in format_profile(r)
