"""The shipped files must not jump when the face box moves by a fraction of a pixel.

A detector's box wobbles by sub-pixel amounts from frame to frame; an INT8 network whose answer moves by a
degree for that turns into jitter on the DMS's yaw signal. For each profile, real faces (the Apache-2.0
``faces-aws`` photos, YuNet boxes) are cropped with boxes shifted by 0.01 px, and the mean geodesic change
of the answer must stay under 0.2 deg (the [accuracy] issue's bound)."""
from __future__ import annotations

import pytest

from edgepose import defaults

BOUND_DEG = 0.2


@pytest.fixture(scope="module")
def faces(data_file):
    from edgepose.evaluation import photo_faces

    out = photo_faces(data_file("faces-aws"), data_file("detectors/yunet/yunet_s_640_640.onnx"))
    if len(out) < 6:
        pytest.skip("fewer than 6 faces found in faces-aws")
    return out


# Known gap, kept visible: the shipped INT8 files (v18) move 0.35 deg (cpu) and 0.57 deg (tensorrt) on average for
# a 0.01 px shift (FP32: 0.07; docs/models.md "INT8"; activation equalization brings them to 0.22 / 0.38, v22).
# strict: once a build meets the bound, this marker must go.
INT8_GAP = pytest.mark.xfail(strict=True, reason="INT8 sub-pixel stability above 0.2 deg (docs/models.md, INT8)")


@pytest.mark.parametrize("profile", [p if p == "fp32" else pytest.param(p, marks=INT8_GAP) for p in defaults.PROFILES])
def test_a_sub_pixel_box_shift_barely_moves_the_answer(profile, faces):
    """The measurement is `edgepose models evaluate`'s "0.01 px shift" column (edgepose.assets.evaluate)."""
    pytest.importorskip("onnxruntime")
    from edgepose.assets.evaluate import OnnxRow
    from edgepose.evaluation import subpixel_change

    row = OnnxRow(profile, defaults.default_pose_model(profile))
    moved = subpixel_change(row.predict, faces)
    assert len(moved) == 4 * len(faces)
    assert moved.mean() < BOUND_DEG, f"{profile}: mean change {moved.mean():.3f} deg, max {moved.max():.3f} deg"
