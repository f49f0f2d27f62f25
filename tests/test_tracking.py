"""IoU tracker (ids, hysteresis, motion between detections) and driver selection."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.errors import UserError
from edgepose.runtime.detection import Detection
from edgepose.runtime.driver import DriverSelector
from edgepose.runtime.tracking import IoUTracker, Track


def D(x1, y1, x2, y2, s=0.9):
    return Detection((x1, y1, x2, y2), s, None)


def test_ids_are_stable_and_min_hits_confirms():
    tr = IoUTracker(min_hits=2, max_age=2)
    assert tr.update([D(0, 0, 50, 50), D(200, 0, 250, 50)]) == []  # tentative
    conf = tr.update([D(2, 0, 52, 50), D(201, 1, 251, 51)])
    assert sorted(t.track_id for t in conf) == [1, 2]
    for k in range(5):
        conf = tr.update([D(4 + 2 * k, 0, 54 + 2 * k, 50), D(200, 0, 250, 50)])
        assert sorted(t.track_id for t in conf) == [1, 2]


def test_one_off_false_positive_never_confirmed():
    tr = IoUTracker(min_hits=2, max_age=1)
    tr.update([D(0, 0, 50, 50)])
    tr.update([D(0, 0, 50, 50), D(300, 300, 320, 320)])  # flash
    conf = tr.update([D(0, 0, 50, 50)])
    assert [t.track_id for t in conf] == [1]
    conf = tr.update([D(0, 0, 50, 50)])
    assert [t.track_id for t in tr.tracks] == [1]  # the flash aged out


def test_max_age_hysteresis_keeps_id_through_missed_detections():
    tr = IoUTracker(min_hits=1, max_age=2)
    tr.update([D(0, 0, 50, 50)])
    tr.update([])
    tr.update([])  # two misses: still alive
    assert [t.track_id for t in tr.update([D(1, 0, 51, 50)])] == [1]
    tr.update([]), tr.update([]), tr.update([])  # three misses > max_age
    assert tr.tracks == []
    assert [t.track_id for t in tr.update([D(1, 0, 51, 50)])] == [2]  # new id after loss


def test_motion_prediction_between_detections():
    """A face moving 4 px/frame, detected every 3rd frame: predicted boxes follow it."""
    tr = IoUTracker(min_hits=1, max_age=2, velocity_smoothing=0.3)
    errors = []
    for f in range(30):
        x = 4.0 * f
        truth = np.array([x, 10, x + 60, 70])
        if f % 3 == 0:
            tr.update([D(*truth)])
        else:
            (t,) = tr.predict()
            errors.append(np.abs(t.box - truth).max())
    assert len(tr.tracks) == 1 and tr.tracks[0].track_id == 1
    assert max(errors[-6:]) < 2.0  # converged velocity
    still = IoUTracker(min_hits=1, predict_motion=False)
    still.update([D(0, 0, 10, 10)])
    np.testing.assert_allclose(still.predict()[0].box, [0, 0, 10, 10])


def test_tracker_rejects_bad_parameters():
    with pytest.raises(ValueError):
        IoUTracker(iou_threshold=1.5)
    with pytest.raises(ValueError):
        IoUTracker(min_hits=0)


def _t(i, x1, y1, x2, y2):
    return Track(i, np.array([x1, y1, x2, y2], float), 0.9, confirmed=True)


def test_driver_largest_with_hysteresis():
    sel = DriverSelector("largest", min_face_frac=0.05)
    a, b = _t(1, 0, 0, 100, 100), _t(2, 300, 0, 390, 90)
    assert sel.select([a, b], 640, 480) == 1
    b2 = _t(2, 300, 0, 395, 95)  # slightly larger than a now: within the hysteresis band
    b2.box = np.array([300, 0, 404, 104], float)
    assert sel.select([a, b2], 640, 480) == 1
    b3 = _t(2, 300, 0, 460, 160)  # clearly larger -> switch
    assert sel.select([a, b3], 640, 480) == 2
    assert sel.select([], 640, 480) is None


def test_driver_roi_and_min_size():
    # LHD with a centre-mounted camera: the driver is on the image right
    sel = DriverSelector("roi", drive_side="lhd", min_face_frac=0.1)
    passenger = _t(1, 50, 100, 250, 300)  # bigger, but image-left
    driver = _t(2, 420, 100, 560, 240)
    tiny = _t(3, 600, 10, 620, 30)
    assert sel.select([passenger, driver, tiny], 640, 480) == 2
    rhd = DriverSelector("roi", drive_side="rhd")
    assert rhd.select([passenger, driver], 640, 480) == 1
    explicit = DriverSelector("roi", roi=[0.9, 0, 1, 1], min_face_frac=0.0)
    assert explicit.select([passenger, driver, tiny], 640, 480) == 3
    assert DriverSelector("roi", roi=[0.9, 0, 1, 1], min_face_frac=0.1).select([tiny], 640, 480) is None


def test_driver_bad_options():
    with pytest.raises(UserError, match="driver.mode"):
        DriverSelector("nearest")
    with pytest.raises(UserError, match="driver.roi"):
        DriverSelector("roi", roi=[0.5, 0, 0.2, 1])
    with pytest.raises(UserError, match="drive_side"):
        DriverSelector("roi", drive_side="middle")


def test_predicted_boxes_never_collapse():
    """A shrinking, jumping detection sequence must not drive predicted boxes to empty/inverted."""
    tr = IoUTracker(iou_threshold=0.1, min_hits=1, max_age=5)
    tr.update([D(100, 100, 200, 260)])
    tr.update([D(110, 100, 170, 240)])  # big shrink in one frame
    for _ in range(40):
        for t in tr.predict():
            assert t.box[2] > t.box[0] and t.box[3] > t.box[1]
            assert t.box[2] - t.box[0] >= 0.5 * 60 - 1e-9


def test_reid_age_gives_a_lost_face_its_id_back():
    """A confirmed face missed for longer than max_age comes back on its last box: with reid_age it keeps
    its id (reported again at once), without it gets a new one; a detection elsewhere still gets a new id."""
    def run(reid_age):
        tr = IoUTracker(min_hits=2, max_age=1, reid_age=reid_age)
        for _ in range(3):
            tr.update([D(100, 100, 160, 160)])
        for _ in range(4):  # 4 misses > max_age: deleted
            tr.update([])
        assert tr.tracks == []
        back = tr.update([D(103, 101, 163, 161), D(400, 100, 460, 160)])
        return sorted(t.track_id for t in back), sorted(t.track_id for t in tr.tracks)

    assert run(reid_age=5) == ([1], [1, 2])  # old id back and confirmed; the stranger tentative with id 2
    assert run(reid_age=0) == ([], [2, 3])  # off: both new and tentative


def test_reid_forgets_after_reid_age_and_never_revives_tentative_tracks():
    tr = IoUTracker(min_hits=2, max_age=0, reid_age=2)
    tr.update([D(0, 0, 50, 50)])  # tentative only
    tr.update([])  # deleted without ever being confirmed
    assert [t.track_id for t in tr.update([D(0, 0, 50, 50)])] == [] and tr.tracks[0].track_id == 2
    tr2 = IoUTracker(min_hits=1, max_age=0, reid_age=2)
    tr2.update([D(0, 0, 50, 50)])
    for _ in range(4):  # deleted, then 3 more runs > reid_age
        tr2.update([])
    assert [t.track_id for t in tr2.update([D(0, 0, 50, 50)])] == [2]
    tr2.reset()
    assert tr2.lost == []
    with pytest.raises(ValueError):
        IoUTracker(reid_age=-1)
