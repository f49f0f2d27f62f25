"""PoseDataset, DataLoader workers, ConcatDataset, the crop cache and build_dataset."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from edgepose import geometry as g
from edgepose.data import Augment, FolderReader, PoseDataset, Sample, build_dataset
from edgepose.data.cache import CropCache
from edgepose.errors import DataError
from edgepose.preprocess import CropPolicy, PreprocessSpec


def _folder(tmp_path, n=6, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    lines = []
    for i in range(n):
        img = np.stack([127 + 100 * np.sin(xx / (9 + i) + c) * np.cos(yy / 13) for c in range(3)], -1)
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.clip(img, 0, 255).astype(np.uint8))
        p, y, r = rng.uniform(-60, 60, 3)
        lines.append({"image": f"img{i}.png", "pitch": p, "yaw": y, "roll": r,
                      "x1": 50 + i, "y1": 30, "x2": 110 + i, "y2": 90})
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


SPEC = PreprocessSpec(input_size=64)


def test_item_layout(tmp_path):
    ds = PoseDataset(FolderReader(_folder(tmp_path)), SPEC)
    item = ds[2]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["R"].shape == (3, 3) and item["R"].dtype == torch.float32
    assert item["labelled"] is True and item["source"] == "folder:img2.png"
    np.testing.assert_allclose(g.euler_to_matrix(item["euler"].double().numpy()), item["R"].numpy(), atol=1e-5)


def test_samples_list_unlabelled_and_empty():
    img = np.zeros((50, 50), np.uint8)  # GRAY frame, no box, no label
    ds = PoseDataset([Sample(image=img, source="frame0")], PreprocessSpec(input_size=32, color_order="GRAY",
                                                                          channels=1, mean=(0.5,), std=(0.5,)))
    item = ds[0]
    assert item["image"].shape == (1, 32, 32) and not item["labelled"] and torch.isnan(item["R"]).all()
    with pytest.raises(DataError, match="empty dataset"):
        PoseDataset([], SPEC)


def test_dataloader_two_workers_and_concat(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    aug = {"flip_p": 0.5, "rotate_p": 1.0, "rotate_deg": 30, "box_scale": 0.1}
    ds = build_dataset([{"format": "folder", "labels": str(_folder(a, 5))},
                        {"format": "folder", "labels": str(_folder(b, 3, seed=1)), "augment": False}], SPEC, aug)
    assert len(ds) == 8
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [bt["image"].shape[0] for bt in batches] == [4, 4]
    R = torch.cat([bt["R"] for bt in batches]).double().numpy()
    assert np.all(g.is_rotation(R, atol=1e-5))
    # the non-augmented source returns its exact labels
    plain = FolderReader(b / "labels.jsonl")
    np.testing.assert_allclose(R[5:], np.stack([s.R for s in plain]), atol=1e-6)
    srcs = [s for bt in batches for s in bt["source"]]
    assert srcs[0] == "folder:img0.png" and srcs[5] == "folder:img0.png" and len(set(srcs)) == 5


def test_workers_draw_different_augmentations(tmp_path):
    ds = PoseDataset(FolderReader(_folder(tmp_path, 4)), SPEC, Augment(flip_p=0, rotate_p=1.0, rotate_deg=180))
    torch.manual_seed(0)
    e1 = torch.cat([b["R"] for b in DataLoader(ds, batch_size=2, num_workers=2)])
    e2 = torch.cat([b["R"] for b in DataLoader(ds, batch_size=2, num_workers=2)])
    assert not torch.allclose(e1, e2)  # a new epoch draws new angles
    assert not torch.allclose(e1[0:2], e1[2:4])


def test_crop_cache_matches_direct_crop_and_invalidates(tmp_path):
    labels = _folder(tmp_path, 4)
    reader = FolderReader(labels)
    folder = tmp_path / "cache"
    cache = CropCache.open(reader, SPEC, folder, margin=1.5, progress=False)
    assert (folder / "crops.npy").is_file() and len(cache) == 4 and cache.check_box_inside(SPEC)
    direct, cached = PoseDataset(reader, SPEC), PoseDataset(cache, SPEC)
    for i in range(4):
        a, b = direct[i], cached[i]
        assert torch.equal(a["R"], b["R"]) and a["source"] == b["source"]
        assert (a["image"] - b["image"]).abs().mean() < 0.05  # one extra bilinear resampling
    # rotated crops from the cache agree with rotated crops from the frame
    aug = Augment(flip_p=0.0, rotate_p=1.0, rotate_deg=40)
    crop_a = Augment.__call__(aug, reader[1], SPEC, np.random.default_rng(5))
    crop_b = Augment.__call__(aug, cache[1], SPEC, np.random.default_rng(5))
    assert np.abs(crop_a[0].astype(int) - crop_b[0].astype(int)).mean() < 4
    np.testing.assert_allclose(crop_a[1], crop_b[1], atol=1e-12)
    # reuse: same key, files untouched
    mtime = (folder / "crops.npy").stat().st_mtime_ns
    assert CropCache.open(reader, SPEC, folder, progress=False).key == cache.key
    assert (folder / "crops.npy").stat().st_mtime_ns == mtime
    # a different crop policy or a changed label file rebuilds it
    other = PreprocessSpec(input_size=64, crop=CropPolicy(scale=1.2))
    assert CropCache.open(reader, other, folder, progress=False).key != cache.key
    labels.write_text(labels.read_text().replace('"x1": 50', '"x1": 40'))
    assert CropCache.open(FolderReader(labels), other, folder, progress=False).index["samples"][0]["box"] != \
        cache.index["samples"][0]["box"]
    assert not list(tmp_path.glob("cache.tmp-*")) and not list(tmp_path.glob("cache.old-*"))
    with pytest.raises(DataError, match="margin must be >= 1"):
        CropCache.open(reader, SPEC, folder, margin=0.8)


def test_cache_keeps_random_300wlp_margin(data_file, tmp_path):
    spec = PreprocessSpec(input_size=64, crop=CropPolicy(scale=1.0))
    ds = build_dataset({"format": "300wlp", "root": str(data_file("300wlp-sample")), "cache": str(tmp_path / "c")},
                       spec, progress=False)
    boxes = {tuple(np.round(ds.source.get(0, np.random.default_rng(s)).box, 3)) for s in range(5)}
    assert len(boxes) == 5  # k is still drawn per access from the cached landmark box


def test_build_dataset_aflw(aflw_dir):
    ds = build_dataset({"format": "aflw2000", "root": str(aflw_dir), "filter99": True}, PreprocessSpec(input_size=96))
    assert len(ds) == 6
    item = ds[0]
    assert item["image"].shape == (3, 96, 96)
    with pytest.raises(DataError, match="empty list"):
        build_dataset([], SPEC)


# --- Euler labels beyond |yaw| = 90 -------------------------------------------------------------
# The dataset's own triple (here from folder Euler columns) must survive: decoding R alone folds
# yaw 95 into (p + 180, 85, r + 180), which puts bin/LDL targets and the Euler MAE on the wrong side.

PYR95 = np.array([10.0, 95.0, 5.0])


def _yaw95_folder(tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), np.full((40, 40, 3), 127, np.uint8))
    p, y, r = PYR95
    path = tmp_path / "labels.csv"
    path.write_text(f"image,pitch,yaw,roll,x1,y1,x2,y2\nface.png,{p},{y},{r},5,5,35,35\n")
    return path


def _assert_decomposes(item):
    np.testing.assert_allclose(g.euler_to_matrix(item["euler"].double().numpy()), item["R"].double().numpy(),
                               atol=1e-5)


def test_dataset_keeps_the_readers_euler_label_beyond_yaw_90(tmp_path):
    reader = FolderReader(_yaw95_folder(tmp_path))
    np.testing.assert_allclose(reader[0].extra["pyr_deg"], PYR95)
    item = PoseDataset(reader, SPEC)[0]
    np.testing.assert_allclose(item["euler"].numpy(), PYR95, atol=1e-5)
    _assert_decomposes(item)


def test_flip_gives_p_minus_y_minus_r_beyond_yaw_90(tmp_path):
    item = PoseDataset(FolderReader(_yaw95_folder(tmp_path)), SPEC, Augment(flip_p=1.0))[0]
    np.testing.assert_allclose(item["euler"].numpy(), [10.0, -95.0, -5.0], atol=1e-5)
    np.testing.assert_allclose(item["R"].numpy(), g.flip_label(g.euler_to_matrix(PYR95)), atol=1e-6)
    _assert_decomposes(item)


def test_small_rotation_keeps_yaw_beyond_90_and_decomposes_R(tmp_path):
    ds = PoseDataset(FolderReader(_yaw95_folder(tmp_path)), SPEC, Augment(flip_p=0.5, rotate_p=1.0, rotate_deg=3))
    for seed in range(6):
        torch.manual_seed(seed)
        item = ds[0]
        _assert_decomposes(item)
        assert abs(item["euler"][1]) > 90.0, item["euler"]  # the label stays on its branch


def test_euler_label_rotation_follows_the_label_and_falls_back_without_one():
    from edgepose.data.augment import euler_label

    R = g.euler_to_matrix(PYR95)
    s = Sample(image=np.zeros((8, 8), np.uint8), R=R, extra={"pyr_deg": PYR95})
    # a 180 deg image rotation is exactly (p, y, r) -> (-p, -y, r + 180)
    R180 = g.rotate_label(R, 180.0)
    np.testing.assert_allclose(euler_label(s, R180, 180.0), [-10.0, -95.0, -175.0], atol=1e-9)
    np.testing.assert_allclose(euler_label(s, g.flip_label(R180), 180.0, True), [-10.0, 95.0, 175.0], atol=1e-9)
    for angle in (-30.0, 15.0, 90.0):
        e = euler_label(s, g.rotate_label(R, angle), angle)
        np.testing.assert_allclose(g.euler_to_matrix(e), g.rotate_label(R, angle), atol=1e-9)
    # no reader label: the decode of R (|yaw| <= 90) is all there is
    plain = Sample(image=s.image, R=R)
    np.testing.assert_allclose(euler_label(plain, R), g.matrix_to_euler(R))
    # a reader triple that does not describe R never overrides it
    wrong = Sample(image=s.image, R=R, extra={"pyr_deg": np.array([0.0, 95.0, 40.0])})
    np.testing.assert_allclose(g.euler_to_matrix(euler_label(wrong, R)), R, atol=1e-9)


def test_bin_and_ldl_targets_for_yaw_95_land_in_the_yaw_95_bin(tmp_path):
    from edgepose.losses import ldl_target
    from edgepose.models.heads import bin_centers, bin_index, default_bins

    spec = default_bins()["yaw"]  # HopeNet's 66 bins of 3 deg over [-99, 99)
    for aug, yaw in ((None, 95.0), (Augment(flip_p=1.0), -95.0)):
        euler = PoseDataset(FolderReader(_yaw95_folder(tmp_path)), SPEC, aug)[0]["euler"][None]
        idx = int(bin_index(euler[:, 1], spec)[0])
        centre = float(bin_centers(spec)[idx])
        assert abs(centre - yaw) <= spec.width / 2, (centre, yaw)
        target = ldl_target(euler[:, 1].double(), spec, sigma_deg=6.0)
        assert int(target.argmax()) == idx


def test_crop_cache_keeps_the_readers_euler_label(tmp_path):
    cache = CropCache.open(FolderReader(_yaw95_folder(tmp_path)), SPEC, tmp_path / "cache", progress=False)
    np.testing.assert_allclose(cache[0].extra["pyr_deg"], PYR95)
    np.testing.assert_allclose(PoseDataset(cache, SPEC)[0]["euler"].numpy(), PYR95, atol=1e-5)
