"""Readers: the shared AFLW2000 / 300W-LP fixtures, generated BIWI folders and npz files, folder
CSV/JSONL with its error messages, and video frame sources."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import scipy.io

from edgepose import geometry as g
from edgepose.data import (AFLW2000Reader, BIWINpzReader, BIWIReader, FolderReader, VideoReader, W300LPReader,
                           build_reader, landmark_box, load_mat_label, loose_box)
from edgepose.errors import DataError


# --- AFLW2000 / 300W-LP ------------------------------------------------------------------------

def test_aflw2000_reproduces_labels_csv(aflw_dir):
    rows = list(csv.DictReader((aflw_dir / "labels.csv").open()))
    assert len(rows) == 6
    reader = AFLW2000Reader(aflw_dir, crop="landmarks", filter99=False)
    by_name = {s.source.split(":")[1]: s for s in reader}
    for row in rows:
        s = by_name[row["file"].rsplit(".", 1)[0]]
        pyr = g.matrix_to_euler(s.R)
        want = [float(row["pitch_deg"]), float(row["yaw_deg"]), float(row["roll_deg"])]
        np.testing.assert_allclose(pyr, want, atol=1e-3)  # decoded from our R, not just copied
        np.testing.assert_allclose(s.extra["pyr_deg"], want, atol=1e-3)
        box = [float(row[k]) for k in ("pt2d_x_min", "pt2d_y_min", "pt2d_x_max", "pt2d_y_max")]
        np.testing.assert_allclose(s.box, box, atol=0.0051)  # csv rounds to 2 decimals
        assert s.image.shape == (450, 450, 3) and s.image.dtype == np.uint8


def test_aflw2000_missing_landmarks_become_nan(aflw_dir):
    raw = scipy.io.loadmat(str(aflw_dir / "image02420.mat"))["pt2d"]
    lab = load_mat_label(aflw_dir / "image02420.mat")
    missing = (raw[0] < 0) | (raw[1] < 0)
    assert np.isnan(lab["landmarks"][missing]).all()
    assert np.isfinite(lab["landmarks"][~missing]).all()


def test_aflw2000_test_crop_margins(aflw_dir):
    tight = AFLW2000Reader(aflw_dir, crop="landmarks")[0].box
    loose = AFLW2000Reader(aflw_dir, crop="test")[0].box
    w, h = tight[2] - tight[0], tight[3] - tight[1]
    # docs/data.md ("Formats"): effective margins left 0.40w, right 0.56w, top 0.40h, bottom 0.168h
    np.testing.assert_allclose([tight[0] - loose[0], loose[2] - tight[2]], [0.4 * w, 0.56 * w], rtol=1e-9)
    np.testing.assert_allclose([tight[1] - loose[1], loose[3] - tight[3]], [0.4 * h, 0.168 * h], rtol=1e-9)


def test_train_crop_margins_and_randomness():
    box = (100.0, 100.0, 200.0, 250.0)
    w, h, k = 100.0, 150.0, 0.3
    b = loose_box(box, k, "train")
    np.testing.assert_allclose([box[0] - b[0], b[2] - box[2]], [0.6 * k * w, 0.6 * k * (1 + 0.6 * k) * w])
    np.testing.assert_allclose([box[1] - b[1], b[3] - box[3]], [2 * k * h, 0.6 * k * (1 + 2 * k) * h])
    with pytest.raises(ValueError):
        loose_box(box, k, "other")


def test_300wlp_reader(data_file):
    root = data_file("300wlp-sample")
    r = W300LPReader(root)
    assert len(r) == 1
    a, b = r.get(0, np.random.default_rng(0)), r.get(0, np.random.default_rng(1))
    assert a.box != b.box  # k ~ U(0.2, 0.4) per access
    np.testing.assert_allclose(g.matrix_to_euler(a.R), [-7.5836, -44.0086, 3.2076], atol=1e-3)
    tight = landmark_box(a.landmarks)
    for box in (a.box, b.box):
        w = tight[2] - tight[0]
        assert 0.12 * w - 1e-9 <= tight[0] - box[0] <= 0.24 * w + 1e-9


def test_300wlp_file_list(tmp_path, data_file):
    root = data_file("300wlp-sample")
    fl = tmp_path / "files.txt"
    fl.write_text("# 300W-LP list\nIBUG_image_008_1_0\n")
    assert len(W300LPReader(root, file_list=fl)) == 1
    fl.write_text("IBUG_missing\n")
    with pytest.raises(DataError, match=r"files.txt:1: image .*IBUG_missing.jpg not found"):
        W300LPReader(root, file_list=fl)


def _write_mat(path, pyr_deg, pts):
    scipy.io.savemat(str(path), {"Pose_Para": np.array([[*np.radians(pyr_deg), 0, 0, 0, 1]], np.float32),
                                 "pt2d": np.asarray(pts, float).T})
    cv2.imwrite(str(path.with_suffix(".jpg")), np.full((60, 60, 3), 128, np.uint8))


def test_filter99_and_errors(tmp_path):
    pts = [[10, 10], [50, 12], [30, 50], [-1, 452]]
    _write_mat(tmp_path / "a.mat", [10, 20, 5], pts)
    _write_mat(tmp_path / "b.mat", [10, 120, 5], pts)  # |yaw| > 99: removed by the protocol filter
    assert len(AFLW2000Reader(tmp_path)) == 1
    r = AFLW2000Reader(tmp_path, filter99=False, crop="landmarks")
    assert len(r) == 2 and r[0].box == (10.0, 10.0, 50.0, 50.0)  # the x = -1 point is ignored
    with pytest.raises(DataError, match="not found"):
        AFLW2000Reader(tmp_path / "nope")
    with pytest.raises(DataError, match="crop must be"):
        AFLW2000Reader(tmp_path, crop="square")
    (tmp_path / "b.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="cannot read .*b.mat"):
        AFLW2000Reader(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .jpg/.png"):
        AFLW2000Reader(empty)


# --- BIWI --------------------------------------------------------------------------------------

def _biwi_folder(root, n=4, seed=0, cal=True):
    rng = np.random.default_rng(seed)
    Rs = []
    for seq in ("01", "02"):
        d = root / seq
        d.mkdir(parents=True)
        if cal:
            (d / "rgb.cal").write_text("500 0 320\n0 500 240\n0 0 1\n\n0 0 0 0\n\n1 0 0\n0 1 0\n0 0 1\n\n0 0 0\n")
        for i in range(n):
            R = g.euler_to_matrix(rng.uniform(-60, 60, 3))
            R_file = (g.F_FLIP @ R @ g.F_FLIP).T  # inverse of biwi_to_matrix
            img = np.zeros((480, 640, 3), np.uint8)
            cv2.circle(img, (320 + 10 * i, 240), 60, (0, 180, 255), -1)
            cv2.imwrite(str(d / f"frame_{i:05d}_rgb.png"), img)
            t = np.array([10.0 * i, 0.0, 1000.0])
            lines = [" ".join(f"{v:.9f}" for v in row) for row in R_file] + ["", " ".join(f"{v}" for v in t)]
            (d / f"frame_{i:05d}_pose.txt").write_text("\n".join(lines) + "\n")
            Rs.append(R)
        cv2.imwrite(str(d / "frame_00099_rgb.png"), img)  # a frame without pose: not a sample
    return Rs


def test_biwi_raw_reader(tmp_path):
    Rs = _biwi_folder(tmp_path)
    r = BIWIReader(tmp_path)
    assert len(r) == 8
    for s, R in zip(r, Rs):
        np.testing.assert_allclose(s.R, R, atol=1e-7)
        np.testing.assert_allclose(g.matrix_to_euler(s.R), g.biwi_euler_fsanet((g.F_FLIP @ R @ g.F_FLIP).T), atol=1e-6)
    s = r[1]  # head centre (10, 0, 1000) mm -> u = 320 + 500 * 10 / 1000; 220 mm -> 110 px
    np.testing.assert_allclose(s.box, (325 - 55, 240 - 55, 325 + 55, 240 + 55), atol=1e-9)
    assert s.source == "biwi:01/frame_00001_rgb"
    assert len(BIWIReader(tmp_path, sequences=["02"])) == 4
    with pytest.raises(DataError, match="sequences not found"):
        BIWIReader(tmp_path, sequences=["07"])


def test_biwi_boxes_file_and_errors(tmp_path):
    _biwi_folder(tmp_path, n=2, cal=False)
    assert BIWIReader(tmp_path)[0].box is None  # no calibration, no boxes: whole frame
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,x1,y1,x2,y2\n01/frame_00000_rgb.png,250,170,390,310\n")
    r = BIWIReader(tmp_path, boxes=boxes)
    assert len(r) == 1 and r[0].box == (250.0, 170.0, 390.0, 310.0)  # undetected frames skipped
    boxes.write_text("file,a\n")
    with pytest.raises(DataError, match="header must contain"):
        BIWIReader(tmp_path, boxes=boxes)
    (tmp_path / "01" / "frame_00000_pose.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(DataError, match="frame_00000_pose.txt"):
        BIWIReader(tmp_path)
    (tmp_path / "01" / "frame_00000_pose.txt").write_text("1 0 0\n0 2 0\n0 0 1\n\n0 0 0\n")
    with pytest.raises(DataError, match="not a rotation"):
        BIWIReader(tmp_path)
    with pytest.raises(DataError, match="not found"):
        BIWIReader(tmp_path / "missing")


def test_biwi_npz(tmp_path):
    rng = np.random.default_rng(3)
    pyr = rng.uniform(-80, 80, (5, 3))
    pyr[4] = [10, 120, 0]
    images = rng.integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    np.savez(tmp_path / "BIWI_test.npz", image=images, pose=pyr[:, [1, 0, 2]])  # stored as yaw, pitch, roll
    r = BIWINpzReader(tmp_path / "BIWI_test.npz")
    assert len(r) == 5
    s = r[2]
    np.testing.assert_allclose(g.matrix_to_euler(s.R), pyr[2], atol=1e-9)
    assert s.box == (0, 0, 64, 64) and np.array_equal(s.image, images[2])
    assert len(BIWINpzReader(tmp_path / "BIWI_test.npz", filter99=True)) == 4
    np.savez(tmp_path / "bad.npz", img=images)
    with pytest.raises(DataError, match="needs arrays 'image' and 'pose'"):
        BIWINpzReader(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="not found"):
        BIWINpzReader(tmp_path / "none.npz")


# --- folder CSV / JSONL ------------------------------------------------------------------------

def _images(tmp_path, n=3, gray=False):
    names = []
    for i in range(n):
        img = np.full((40, 50) if gray else (40, 50, 3), 30 * i, np.uint8)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
        names.append(f"f{i}.png")
    return names


def test_folder_csv_euler_and_matrix(tmp_path):
    names = _images(tmp_path)
    R2 = g.euler_to_matrix([5, -30, 12])
    (tmp_path / "labels.csv").write_text(
        "image,yaw,pitch,roll,R,x1,y1,x2,y2\n"
        f"{names[0]},20,10,-5,,1,2,30,35\n"
        f"{names[1]},,,,{' '.join(map(str, R2.ravel()))},,,,\n")
    r = FolderReader(tmp_path / "labels.csv")
    assert len(r) == 2
    np.testing.assert_allclose(g.matrix_to_euler(r[0].R), [10, 20, -5], atol=1e-9)
    assert r[0].box == (1, 2, 30, 35) and r[1].box is None
    np.testing.assert_allclose(r[1].R, R2, atol=1e-12)
    assert r[0].image.shape == (40, 50, 3)


def test_folder_jsonl_gray_ir(tmp_path):
    names = _images(tmp_path, gray=True)
    R = g.euler_to_matrix([0, 45, 0])
    lines = [json.dumps({"image": names[0], "R": R.tolist()}),
             json.dumps({"image": names[1], "yaw": 1, "pitch": 2, "roll": 3, "x1": 0, "y1": 0, "x2": 10, "y2": 10})]
    (tmp_path / "labels.jsonl").write_text("\n".join(lines) + "\n")
    keep = FolderReader(tmp_path / "labels.jsonl")
    assert keep[0].image.ndim == 2  # IR stays single channel
    assert FolderReader(tmp_path / "labels.jsonl", gray="bgr")[0].image.shape == (40, 50, 3)
    np.testing.assert_allclose(keep[0].R, R)


@pytest.mark.parametrize("content, message", [
    ("image,yaw,pitch,roll\nf0.png,10,abc,3\n", r"labels.csv:2: column 'pitch' must be a number"),
    ("image,yaw,pitch\nf0.png,10,3\n", r"labels.csv:2: .*\['roll'\]"),
    ("image,note\nf0.png,x\n", r"labels.csv:2: no pose"),
    ("img,yaw,pitch,roll\nf0.png,1,2,3\n", r"header must contain an 'image' column"),
    ("image,yaw,pitch,roll\nmissing.png,1,2,3\n", r"labels.csv:2: image .*missing.png not found"),
    ("image,yaw,pitch,roll\n", r"no rows: empty dataset"),
    ("image,R\nf0.png,1 0 0 0 1 0 0 0\n", r"labels.csv:2: column 'R' must hold 9 numbers"),
    ("image,R\nf0.png,1 0 0 0 2 0 0 0 1\n", r"labels.csv:2: 'R' is not a rotation"),
    ("image,yaw,pitch,roll,x1,y1,x2,y2\nf0.png,1,2,3,5,5,5,9\n", r"labels.csv:2: empty box"),
    ("image,yaw,pitch,roll,x1,y1,x2,y2\nf0.png,1,2,3,5,5,,9\n", r"needs all of x1,y1,x2,y2"),
])
def test_folder_errors_name_line_and_column(tmp_path, content, message):
    _images(tmp_path, 1)
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        FolderReader(tmp_path / "labels.csv")


def test_folder_other_errors_and_unlabelled(tmp_path):
    names = _images(tmp_path, 1)
    with pytest.raises(DataError, match="label file not found"):
        FolderReader(tmp_path / "nope.csv")
    (tmp_path / "l.txt").write_text("x")
    with pytest.raises(DataError, match="use .csv or .jsonl"):
        FolderReader(tmp_path / "l.txt")
    (tmp_path / "l.jsonl").write_text('{"image": "f0.png", "yaw": 1,\n')
    with pytest.raises(DataError, match=r"l.jsonl:1: invalid JSON"):
        FolderReader(tmp_path / "l.jsonl")
    (tmp_path / "u.csv").write_text(f"image\n{names[0]}\n")
    assert FolderReader(tmp_path / "u.csv", labelled=False)[0].R is None
    cv2.imwrite(str(tmp_path / "f0.png"), np.zeros((4, 4), np.uint8))
    (tmp_path / "f0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot decode image"):
        FolderReader(tmp_path / "u.csv", labelled=False)[0]


# --- video -------------------------------------------------------------------------------------

def test_video_reader_every_nth_frame(data_file):
    path = data_file("videos/head-pose-face-detection-female.mp4")
    r = VideoReader(path, step=5)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(r) == (len(frames) + 4) // 5
    for i in (3, 0, len(r) - 1, 1):  # random access, including going backwards
        s = r[i]
        assert s.R is None and s.box is None
        assert np.array_equal(s.image, frames[5 * i])
    assert VideoReader(path, step=2, max_frames=3, gray="gray")[2].image.ndim == 2


def test_video_errors(tmp_path):
    with pytest.raises(DataError, match="video file not found"):
        VideoReader(tmp_path / "none.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match="bad.mp4"):
        VideoReader(bad)
    with pytest.raises(DataError, match="step"):
        VideoReader(bad, step=0)


def test_build_reader_errors(tmp_path):
    with pytest.raises(DataError, match="needs a 'format' key"):
        build_reader({"root": "x"})
    with pytest.raises(DataError, match="unknown dataset format 'coco'"):
        build_reader({"format": "coco"})
    with pytest.raises(DataError, match=r"unknown key\(s\) \['rooot'\]"):
        build_reader({"format": "aflw2000", "rooot": "x"})
    with pytest.raises(DataError, match=r"missing key\(s\) \['root'\]"):
        build_reader({"format": "aflw2000"})
