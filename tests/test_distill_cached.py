"""Distillation with cached teacher labels: exact label transforms under augmentation, flip-TTA
equivariance, config errors, and a short end-to-end run on real detector crops + synthetic heads."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgepose import geometry
from edgepose.config import ConfigError
from edgepose.data.augment import Augment
from edgepose.data.sample import Reader, Sample
from edgepose.distill.cached import AugmentedDistillDataset, collate_cached, teacher_labels
from edgepose.preprocess import CropPolicy, PreprocessSpec


class ArrayReader(Reader):
    """Real (random-texture) images with boxes and optional labels, held in memory."""

    name = "arrays"

    def __init__(self, n: int, labelled: bool, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.samples = [Sample(image=rng.integers(0, 255, (96, 120, 3), dtype=np.uint8),
                               R=geometry.random_rotations(1, rng)[0] if labelled else None,
                               box=(30.0, 20.0, 80.0, 75.0), source=f"arrays:{i}") for i in range(n)]

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, index: int, rng=None) -> Sample:
        return self.samples[index]


SPEC = PreprocessSpec(input_size=48, color_order="RGB", crop=CropPolicy(scale=1.4))


def test_teacher_label_and_ground_truth_follow_the_crop_transform():
    readers = [ArrayReader(5, labelled=True), ArrayReader(4, labelled=False, seed=1)]
    labels = geometry.random_rotations(9, np.random.default_rng(3))
    aug = Augment(flip_p=0.5, rotate_p=1.0, rotate_deg=40.0, box_scale=0.1, box_shift=0.05, brightness=0.1)
    ds = AugmentedDistillDataset(readers, labels, SPEC, aug, seed=7)
    ds.epoch = 2
    flips = 0
    for i in range(len(ds)):
        item = ds[i]
        # replay the dataset's own random stream: same geometry -> the expected labels
        rng = np.random.default_rng((7, 2, i))
        s = (readers[0].samples + readers[1].samples)[i]
        g = aug.sample_geometry(s, rng)
        flips += g.flip
        exp_t = geometry.rotate_label(labels[i], g.angle_deg)
        exp_t = geometry.flip_label(exp_t) if g.flip else exp_t
        np.testing.assert_allclose(item["R_t"].numpy(), exp_t, atol=1e-5)
        assert item["student"].shape == (3, 48, 48) and item["student"].dtype == torch.float32
        if i < 5:  # labelled: the ground truth goes through the identical transform
            exp_gt = geometry.rotate_label(s.R, g.angle_deg)
            exp_gt = geometry.flip_label(exp_gt) if g.flip else exp_gt
            np.testing.assert_allclose(item["R"].numpy(), exp_gt, atol=1e-5)
            assert item["has_gt"]
            # the relative rotation teacher->GT is preserved up to the shared transform
            a = geometry.geodesic_distance(labels[i], s.R)
            b = geometry.geodesic_distance(item["R_t"].numpy().astype(np.float64), item["R"].numpy().astype(np.float64))
            assert abs(float(a) - float(b)) < 1e-2
        else:
            assert not item["has_gt"]
    assert 0 < flips < len(ds)  # both branches were exercised
    batch = collate_cached([ds[0], ds[6]])
    assert batch["student"].shape == (2, 3, 48, 48) and batch["has_gt"].tolist() == [True, False]
    with pytest.raises(ValueError, match="teacher labels"):
        AugmentedDistillDataset(readers, labels[:3], SPEC, aug)


def test_flip_tta_labels_are_mirror_equivariant():
    """label(flip(image)) == flip_label(label(image)) holds exactly for the TTA mean, for any teacher."""
    from edgepose.distill.teacher import Teacher
    from edgepose.models import create_model

    torch.manual_seed(0)
    net = create_model("resnet18", head="6d", input_size=48)
    net.preprocess = SPEC
    teacher = Teacher([net], ["random-resnet18"])
    r = ArrayReader(4, labelled=False)
    mirrored = ArrayReader(4, labelled=False)
    for s in mirrored.samples:  # mirror the frame and the box
        w = s.image.shape[1]
        x1, y1, x2, y2 = s.box
        s.image, s.box = np.ascontiguousarray(s.image[:, ::-1]), (w - x2, y1, w - x1, y2)
    L = teacher_labels(teacher, [r], batch_size=3, progress=False)
    Lm = teacher_labels(teacher, [mirrored], batch_size=3, progress=False)
    assert L.shape == (4, 3, 3) and np.all(geometry.is_rotation(L, atol=1e-4))
    assert float(geometry.geodesic_distance(Lm, geometry.flip_label(L)).max()) < 0.5  # degrees (resampling only)
    plain = teacher_labels(teacher, [r], flip_tta=False, progress=False)
    assert float(geometry.geodesic_distance(plain, L).max()) > 1e-3  # TTA changes a random teacher's labels


def test_cached_mode_config_errors():
    from edgepose.distill.trainer import load_distill_config

    base = ["data.unlabelled=[x.jpg]"]
    with pytest.raises(ConfigError, match="online or cached"):
        load_distill_config(None, base + ["data.teacher_labels=sometimes"])
    with pytest.raises(ConfigError, match="loss.kl=0"):
        load_distill_config(None, base + ["data.teacher_labels=cached", "loss.kl=0.5"])
    with pytest.raises(ConfigError, match="max_faces"):
        load_distill_config(None, base + ["data.max_faces=0"])
    from edgepose.errors import UserError

    with pytest.raises(UserError, match="unknown augmentation"):
        Augment.from_dict({"flip": 0.5})


def test_cached_distill_end_to_end(tmp_path, data_file):
    """WHENet-free chain: random teacher ckpt -> cached labels on YuNet crops + synthetic heads -> ONNX."""
    faces = data_file("faces-aws")
    det = data_file("detectors/yunet/yunet_s_dynamic.onnx")
    from edgepose.distill.trainer import distill, load_distill_config
    from edgepose.models import create_model

    teacher = tmp_path / "teacher.pt"
    create_model("mobilenetv3_small", head="6d", input_size=64).save_checkpoint(teacher)
    cfg = load_distill_config(None, [
        f"teacher=[{teacher}]", "student.name=resnet18", "student.input_size=48",
        f"data.unlabelled=[{faces}]", "data.labelled=[{format: synth, n: 6, split: train, size: 96}]",
        "data.val={format: synth, n: 4, split: val, size: 96}", "data.teacher_labels=cached", "data.max_faces=2",
        f"data.detector_model={det}", f"data.cache_dir={tmp_path / 'cache'}", "optim.epochs=1",
        "optim.batch_size=8", "loss.gt=1.0", f"out_dir={tmp_path / 'run'}"])
    res = distill(cfg, progress=False)
    h = res["history"][0]
    assert np.isfinite(h["train_loss"]) and {"train_geodesic", "train_gt", "val_mae"} <= set(h)
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["faces"] >= 10 and man["detector"]["max_faces"] == 2
    from edgepose.metadata import load_metadata

    assert load_metadata(res["onnx"]).preprocess.input_size == 48
