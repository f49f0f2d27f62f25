"""edgepose.runtime.idswitch: constructed track sequences with a known number of id switches, and the
real IoUTracker on constructed detections (a gap longer than max_age renumbers the face)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.runtime.detection import Detection
from edgepose.runtime.idswitch import IdSwitchCounter, count_id_switches
from edgepose.runtime.tracking import IoUTracker


def box_at(x, y=100.0, s=60.0):
    return (x, y, x + s, y + s)


def test_steady_faces_have_no_switches():
    frames = [[(1, box_at(100 + i)), (2, box_at(400 - i))] for i in range(50)]
    s = count_id_switches(frames)
    assert s["switches"] == 0 and s["ids"] == 2 and s["events"] == []


def test_fragmentation_counted_within_the_window_only():
    seq = [[(1, box_at(100))] for _ in range(10)]  # frames 0..9: id 1
    seq += [[] for _ in range(2)]  # frames 10, 11: nothing
    seq += [[(2, box_at(103))] for _ in range(10)]  # frame 12: id 2 on id 1's place -> 1 fragmentation
    seq += [[(2, box_at(103)), (3, box_at(600))] for _ in range(3)]  # a new face elsewhere: not a switch
    seq += [[] for _ in range(15)]  # id 2 and 3 end; longer than the window
    seq += [[(4, box_at(103))] for _ in range(3)]  # new id on id 2's place, too late to count
    s = count_id_switches(seq, window=10)
    assert (s["fragmentations"], s["swaps"], s["switches"]) == (1, 0, 1)
    assert s["events"] == [[12, 1, 2, "fragmentation"]]
    assert s["ids"] == 4
    # a wider window also catches the last renumbering
    assert count_id_switches(seq, window=20)["fragmentations"] == 2


def test_one_ended_id_pairs_with_one_new_id():
    seq = [[(1, box_at(100))], [], [(5, box_at(101)), (6, box_at(99))]]
    assert count_id_switches(seq)["fragmentations"] == 1


def test_two_faces_exchanging_ids_count_two_swaps():
    seq = []
    for i in range(20):
        a, b = box_at(100 + 5 * i), box_at(400 - 5 * i)
        seq.append([(1, a), (2, b)] if i != 10 else [(1, b), (2, a)])  # frame 10 exchanges, 11 exchanges back
    s = count_id_switches(seq)
    # frame 10: both ids take the other's face (2); frame 11: both go back (2)
    assert (s["swaps"], s["fragmentations"]) == (4, 0)
    assert {e[3] for e in s["events"]} == {"swap"}


def test_faces_objects_are_accepted_and_bad_parameters_rejected():
    class F:
        def __init__(self, tid, box):
            self.track_id, self.box = tid, box

    c = IdSwitchCounter()
    c.add(0, [F(1, box_at(10))])
    c.add(1, [F(1, box_at(12))])
    assert c.summary()["switches"] == 0
    with pytest.raises(ValueError):
        IdSwitchCounter(window=0)


def _run_tracker(gap: int, max_age: int) -> dict:
    """One face moving right; the detector misses it for ``gap`` frames in the middle."""
    tr = IoUTracker(iou_threshold=0.3, min_hits=1, max_age=max_age)
    frames = []
    for i in range(40):
        missing = 15 <= i < 15 + gap
        dets = [] if missing else [Detection(np.array(box_at(100 + 2 * i)), 0.9)]
        tracks = tr.update(dets)
        frames.append([(t.track_id, t.box) for t in tracks])
    return count_id_switches(frames)


def test_real_tracker_renumbers_after_a_gap_longer_than_max_age():
    assert _run_tracker(gap=2, max_age=3)["switches"] == 0
    s = _run_tracker(gap=6, max_age=3)
    assert s["fragmentations"] == 1 and s["ids"] == 2
