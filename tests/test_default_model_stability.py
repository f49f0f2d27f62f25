"""The shipped files must not jump when the face box moves by a fraction of a pixel.

A detector's box wobbles by sub-pixel amounts from frame to frame; an INT8 network whose answer moves by a
degree for that turns into jitter on the DMS's yaw signal. For each profile, real faces (the Apache-2.0
``faces-aws`` photos, YuNet boxes) are cropped with boxes shifted by 0.01 px, and the mean geodesic change
of the answer must stay under 0.2 deg (the [accuracy] issue's bound)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import defaults

BOUND_DEG = 0.2
SHIFTS = ((0.01, 0.0), (0.0, 0.01), (-0.01, 0.0), (0.0, -0.01))  # px: a detector's frame-to-frame wobble


@pytest.fixture(scope="module")
def faces(data_file):
    import cv2

    from edgepose.runtime import create_detector

    folder = data_file("faces-aws")
    det = create_detector("yunet", model_path=str(data_file("detectors/yunet/yunet_s_640_640.onnx")))
    out = []
    try:
        for f in sorted(folder.glob("*.JPG"))[:12]:
            img = cv2.imread(str(f))
            dets = sorted(det.detect(img), key=lambda d: -d.score)
            if dets:
                out.append((img, tuple(float(v) for v in dets[0].box[:4])))
    finally:
        det.close()
    if len(out) < 6:
        pytest.skip("fewer than 6 faces found in faces-aws")
    return out


# Known gap, kept visible: the shipped INT8 files (v10) move 0.34 deg (cpu) and 0.59 deg (tensorrt) on average for
# a 0.01 px shift (FP32: 0.06; docs/models.md "INT8"). strict: once a build meets the bound, this marker must go.
INT8_GAP = pytest.mark.xfail(strict=True, reason="INT8 sub-pixel stability above 0.2 deg (docs/models.md, INT8)")


@pytest.mark.parametrize("profile", [p if p == "fp32" else pytest.param(p, marks=INT8_GAP) for p in defaults.PROFILES])
def test_a_sub_pixel_box_shift_barely_moves_the_answer(profile, faces):
    pytest.importorskip("onnxruntime")
    from edgepose.metrics import geodesic_errors
    from edgepose.preprocess import preprocess
    from edgepose.runtime import load_backend

    with load_backend(defaults.default_pose_model(profile), intra_op_threads=1) as b:
        def run(dx, dy):
            x = np.stack([preprocess(im, (x1 + dx, y1 + dy, x2 + dx, y2 + dy), b.spec)
                          for im, (x1, y1, x2, y2) in faces])
            return b.infer(x)["R"].astype(np.float64)

        base = run(0.0, 0.0)
        moved = np.concatenate([geodesic_errors(run(dx, dy), base) for dx, dy in SHIFTS])
    assert moved.mean() < BOUND_DEG, f"{profile}: mean change {moved.mean():.3f} deg, max {moved.max():.3f} deg"
