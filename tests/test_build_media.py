"""Which real files the default-model build trains and validates on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepose.assets.build_config import BuildConfig
from edgepose.assets.build_data import held_out, person_age, select_media, source_group
from edgepose.assets.build_report import label_histogram
from edgepose.errors import UserError


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(n.encode())  # distinct contents: copies of one image are treated as one


def test_utkface_ages_and_repository_groups_are_read_from_names():
    assert person_age(Path("26_1_2_20170116174525125.jpg.chip.jpg")) == 26
    assert person_age(Path("single_face.jpg")) is None
    assert source_group(Path("owner__repo__Data1.mp4")) == source_group(Path("/x/owner__repo__Data2.mp4"))
    assert source_group(Path("a.mp4")) != source_group(Path("b.mp4"))
    assert source_group(Path("/mnt/x/a.jpg")) == source_group(Path("../data/a.jpg"))  # not where data is mounted


def test_children_are_dropped_and_whole_repositories_are_held_out(tmp_path):
    _touch(tmp_path / "faces", ["5_0_0_1.jpg.chip.jpg", "30_1_1_2.jpg.chip.jpg", "70_0_3_3.jpg.chip.jpg"])
    clips = [f"rep{k}__proj__clip{j}.mp4" for k in range(40) for j in range(3)]
    _touch(tmp_path / "clips", clips)
    cfg = BuildConfig()
    cfg.data.real, cfg.data.min_age, cfg.data.real_val_split = ["faces", "clips"], 16, 0.25
    train, val = select_media(cfg, tmp_path)
    names = {Path(f).name for f in train + val}
    assert "5_0_0_1.jpg.chip.jpg" not in names and "30_1_1_2.jpg.chip.jpg" in names
    assert not set(train) & set(val)
    val_repos = {source_group(Path(f)) for f in val if f.endswith(".mp4")}
    train_repos = {source_group(Path(f)) for f in train if f.endswith(".mp4")}
    assert val_repos and not val_repos & train_repos  # a repository is on one side only
    assert 2 <= len(val_repos) <= 20  # about a quarter of 40
    assert select_media(cfg, tmp_path) == (train, val)  # the same split every time
    assert all(held_out(g, 0.25) for g in val_repos)


def test_a_held_out_copy_of_a_training_image_is_left_out(tmp_path):
    names = [f"{k}_0_0_{k}.jpg.chip.jpg" for k in range(20, 80)]
    _touch(tmp_path / "faces", names)
    cfg = BuildConfig()
    cfg.data.real, cfg.data.real_val_split = ["faces"], 0.3
    train, val = select_media(cfg, tmp_path)
    copy = Path(val[0]).read_bytes()
    (tmp_path / "faces" / Path(train[0]).name).write_bytes(copy)  # the same picture under a training name
    train2, val2 = select_media(cfg, tmp_path)
    assert val[0] not in val2 and set(val2) == set(val) - {val[0]} and train2 == train


def test_a_split_that_leaves_nothing_to_train_on_is_refused(tmp_path):
    _touch(tmp_path / "faces", ["5_0_0_1.jpg.chip.jpg"])
    cfg = BuildConfig()
    cfg.data.real, cfg.data.min_age = ["faces"], 16
    with pytest.raises(UserError, match="min_age"):
        select_media(cfg, tmp_path)
    cfg.data.min_age, cfg.data.real_val_split = 0, 1.5
    with pytest.raises(UserError, match="real_val_split"):
        select_media(cfg, tmp_path)


def test_label_histogram_counts_every_label_once():
    from edgepose import geometry

    rng = np.random.default_rng(0)
    e = np.column_stack([rng.uniform(-60, 60, 200), rng.uniform(-89, 89, 200), rng.uniform(-40, 40, 200)])
    hist = label_histogram({"real": geometry.euler_to_matrix(e)})
    for k, a in enumerate(("pitch", "yaw", "roll")):
        assert sum(hist["real"][a]) == 200
        up = np.searchsorted(hist["edges_deg"], 30)  # labels above +30 land in the bins from +30 on
        assert sum(hist["real"][a][up:]) == int((e[:, k] > 30).sum())


def test_faces_that_fill_the_frame_are_found_on_a_padded_frame(data_file):
    import cv2

    from edgepose.data.faces import DetectorSettings, _detect
    from edgepose.runtime import create_detector

    model = data_file("detectors/yunet/yunet_s_640_640.onnx")
    img = cv2.imread(str(data_file("aflw2000-sample/image00050.jpg")))
    det = create_detector("yunet", model_path=str(model))
    try:
        full = _detect(det, img, DetectorSettings(pad_large_faces=False))[0]
        x1, y1, x2, y2 = (int(v) for v in full[:4])
        m = int(0.05 * (x2 - x1))
        tight = img[max(0, y1 + m):y2 - m, max(0, x1 + m):x2 - m]  # the face fills this crop, as in UTKFace
        padded = _detect(det, tight, DetectorSettings(pad_large_faces=True))
        assert padded, "no face on the padded frame"
        # back in the tight crop's pixels, the box is the one found with the whole photo around the face
        shifted = np.array(full[:4]) - [max(0, x1 + m), max(0, y1 + m)] * 2
        assert np.abs(np.array(padded[0][:4]) - shifted).max() < 0.15 * (x2 - x1)
    finally:
        det.close()


def test_cached_crops_for_a_larger_student_serve_a_smaller_one():
    """real.npz made for a 96 px student (168 px margin crops) feeds an 88 px student: resampled to 154 px with the
    boxes scaled, the student's input is the same face region as if cropped from the original crops."""
    import cv2

    from edgepose.assets.build_data import downscale_crops
    from edgepose.preprocess import CropPolicy, PreprocessSpec, preprocess

    g = np.random.default_rng(0)
    # a "face" with structure at the scale of a few output pixels (random 21 x 21 blobs, smoothly upscaled)
    big = cv2.resize(g.integers(0, 255, (21, 21, 3), dtype=np.uint8), (168, 168), interpolation=cv2.INTER_CUBIC)
    data = {"images": big[None], "boxes": np.array([[60.5, 55.0, 110.0, 112.5]], np.float32),
            "R": np.eye(3)[None]}
    small = downscale_crops(data, 154)
    assert small["images"].shape == (1, 154, 154, 3) and small["R"] is data["R"]
    np.testing.assert_allclose(small["boxes"][0], data["boxes"][0] * 154 / 168, rtol=1e-6)
    spec = PreprocessSpec(input_size=88, color_order="BGR", crop=CropPolicy(scale=1.6))
    a = preprocess(big, tuple(data["boxes"][0]), spec)
    b = preprocess(small["images"][0], tuple(small["boxes"][0]), spec)
    assert a.std() > 0.3  # the crop has structure
    assert np.abs(a - b).mean() < 0.05 * a.std()
    unscaled = preprocess(small["images"][0], tuple(data["boxes"][0]), spec)  # boxes left unscaled are caught
    assert np.abs(a - unscaled).mean() > 5 * np.abs(a - b).mean()
