"""Face-presence + box heads (models/roi_heads.py): checkpoints, ONNX export, INT8, metadata, backend,
and the pieces of the roi-heads build stage (assets/build_roi.py) that decide what the heads learn."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepose.metadata import ROI_OUTPUTS, ArtifactMetadata, has_roi_outputs, load_metadata
from edgepose.preprocess import CropPolicy, box_from_crop, box_in_crop, crop_box

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_with_heads():
    from edgepose.models.pose_model import PoseModel

    torch.manual_seed(0)
    m = PoseModel.build("mobilenet_v1_050", head="6d", input_size=64)
    heads = m.add_roi_heads(16)
    with torch.no_grad():  # non-trivial outputs, so parity checks compare something
        heads.box.weight.normal_(0.0, 0.05)
        heads.box.bias.copy_(torch.tensor([0.2, 0.2, 0.8, 0.8]))
    return m.eval()


@pytest.fixture(scope="module")
def exported(model_with_heads, tmp_path_factory):
    from edgepose.export import export_onnx

    d = tmp_path_factory.mktemp("roi_export")
    model_with_heads.save_checkpoint(d / "m.pt")
    export_onnx(d / "m.pt", d / "m.onnx", command="test")
    return d


def test_box_crop_units_round_trip_and_meaning():
    crop = crop_box((100, 50, 160, 130), CropPolicy(scale=1.6))  # side 128 around (130, 90)
    units = box_in_crop((100, 50, 160, 130), crop)
    np.testing.assert_allclose(box_from_crop(units, crop), [100, 50, 160, 130], atol=1e-9)
    # the crop's own corners are 0 and 1; a box centred in a 1.6x crop spans 0.5 -+ 0.5 / 1.6 in height
    np.testing.assert_allclose(box_in_crop((66, 26, 194, 154), crop), [0, 0, 1, 1], atol=1e-9)
    np.testing.assert_allclose(units[[1, 3]], [0.5 - 0.5 / 1.6, 0.5 + 0.5 / 1.6], atol=1e-9)


def test_checkpoint_round_trip_keeps_the_heads(model_with_heads, exported):
    from edgepose.models.pose_model import PoseModel

    back = PoseModel.from_checkpoint(exported / "m.pt")
    assert back.has_roi_heads and back.metadata().model_kwargs["roi_heads"] == {"hidden": 16}
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        a, b = model_with_heads(x), back(x)
    for k in ("R", "presence", "box"):
        torch.testing.assert_close(a[k], b[k])
    assert a["presence"].shape == (3, 1) and a["box"].shape == (3, 4)


def test_models_without_heads_keep_their_metadata_and_outputs():
    from edgepose.models.pose_model import PoseModel

    m = PoseModel.build("mobilenet_v1_050", head="6d", input_size=64).eval()
    meta = m.metadata()
    assert "roi_heads" not in meta.model_kwargs and set(meta.outputs) == {"rotation", "euler"}
    assert not has_roi_outputs(meta)
    with torch.no_grad():
        assert "presence" not in m(torch.randn(1, 3, 64, 64))


def test_onnx_has_the_outputs_and_the_sidecar_declares_them(exported):
    import onnx

    g = onnx.load(str(exported / "m.onnx")).graph
    assert [o.name for o in g.output] == ["rotation", "euler", "presence", "box"]
    meta = load_metadata(exported / "m.onnx")
    assert has_roi_outputs(meta) and meta.outputs["box"] == ROI_OUTPUTS["box"]
    diffs = meta.extra["onnx"]["max_abs_diff"]
    assert diffs["random.box"] < 1e-4 and diffs["batch5.presence"] < 1e-4
    side = json.loads((exported / "m.onnx.json").read_text())
    assert "presence" in side["outputs"]


def test_backend_reads_presence_and_box_from_every_format(exported, model_with_heads):
    from edgepose.runtime.backend import load_backend

    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    boxes = [(50, 40, 120, 130), (200, 100, 260, 170)]
    outs = {}
    for name in ("m.pt", "m.onnx"):
        with load_backend(exported / name) as b:
            assert b.has_roi
            outs[name] = b.predict(frame, boxes)
            assert outs[name]["presence"].shape == (2,) and outs[name]["box"].shape == (2, 4)
            assert ((outs[name]["presence"] > 0) & (outs[name]["presence"] < 1)).all()  # a probability
    np.testing.assert_allclose(outs["m.pt"]["presence"], outs["m.onnx"]["presence"], atol=1e-5)
    np.testing.assert_allclose(outs["m.pt"]["box"], outs["m.onnx"]["box"], atol=1e-5)


def test_old_files_without_the_outputs_run_pose_only(exported, tmp_path):
    """A sidecar that does not declare presence / box (every file exported before the heads): pose only."""
    from edgepose.runtime.backend import load_backend
    from edgepose.runtime.runners import open_runner
    from edgepose.runtime.backend import PoseBackend

    meta = load_metadata(exported / "m.onnx")
    old = ArtifactMetadata.from_dict({**meta.to_dict(), "outputs": {k: meta.outputs[k] for k in ("rotation", "euler")}})
    with PoseBackend(open_runner(exported / "m.onnx"), old) as b:
        out = b.predict(np.zeros((100, 100, 3), np.uint8), [(10, 10, 60, 60)])
    assert not b.has_roi and set(out) == {"R", "euler", "valid"}
    # a sidecar that declares outputs the file lacks is named as a mismatch, not a KeyError
    from edgepose.export import export_onnx
    from edgepose.models.pose_model import PoseModel
    from edgepose.errors import ModelError

    plain = PoseModel.build("mobilenet_v1_050", head="6d", input_size=64).eval()
    export_onnx(plain, tmp_path / "plain.onnx", command="test")
    with load_backend(tmp_path / "plain.onnx") as b:
        assert not b.has_roi
    lying = load_metadata(tmp_path / "plain.onnx")
    lying.outputs.update(ROI_OUTPUTS)
    with PoseBackend(open_runner(tmp_path / "plain.onnx"), lying) as b:
        with pytest.raises(ModelError, match="declares the 'presence' output"):
            b.predict(np.zeros((100, 100, 3), np.uint8), [(10, 10, 60, 60)])


@pytest.mark.parametrize("profile", ["cpu", "tensorrt"])
def test_int8_keeps_the_outputs_and_the_heads_float(exported, profile, tmp_path):
    import onnx

    from edgepose.preprocess import preprocess_batch
    from edgepose.quantize.lint import lint_qdq
    from edgepose.quantize.ptq import quantize_onnx
    from edgepose.runtime.backend import load_backend

    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (240, 320, 3), np.uint8)
    spec = load_metadata(exported / "m.onnx").preprocess
    crops = preprocess_batch(frame, [(x, 40, x + 70, 120) for x in range(0, 240, 15)], spec)
    out = tmp_path / f"q-{profile}.onnx"
    quantize_onnx(exported / "m.onnx", out, crops, profile=profile)
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["rotation", "euler", "presence", "box"]
    assert has_roi_outputs(load_metadata(out))
    if profile == "tensorrt":
        assert not [v for v in lint_qdq(out) if v.rule == "head"]
    with load_backend(exported / "m.onnx") as f, load_backend(out) as q:
        a, b = f.predict(frame, [(60, 50, 130, 140)]), q.predict(frame, [(60, 50, 130, 140)])
    assert abs(float(a["presence"][0]) - float(b["presence"][0])) < 0.1
    assert np.abs(a["box"] - b["box"]).max() < 0.1


def test_stage_samples_follow_their_definitions():
    """Positives overlap the face (and carry its box in crop units), shifted negatives do not overlap it."""
    from edgepose.assets.build_config import RoiHeadsSection
    from edgepose.assets.build_roi import Samples, box_iou, face_samples
    from edgepose.preprocess import PreprocessSpec

    cfg = RoiHeadsSection()
    spec = PreprocessSpec(input_size=64, crop=CropPolicy(scale=1.6))
    rng = np.random.default_rng(0)
    images = np.zeros((200, 120, 120, 3), np.uint8)
    boxes = np.tile(np.array([[40.0, 35.0, 80.0, 85.0]]), (200, 1))
    s = Samples()
    face_samples(s, images, boxes, spec, cfg, rng, True, "real", 0.5)
    pos = [j for j in range(len(s)) if s.presence[j] == 1]
    neg = [j for j in range(len(s)) if s.presence[j] == 0]
    assert len(pos) == 200 and 60 < len(neg) < 140
    for j in pos:
        assert box_iou(s.boxes[j], boxes[0]) >= cfg.min_iou_positive
        np.testing.assert_allclose(box_from_crop(s.target[j], crop_box(s.boxes[j], spec.crop)), boxes[0], atol=1e-9)
    assert max(box_iou(s.boxes[j], boxes[0]) for j in neg) <= 0.05
    assert all(not np.isfinite(s.target[j]).any() for j in neg)


def test_stage_errors_are_one_line(tmp_path):
    from edgepose.assets.build import build
    from edgepose.errors import UserError

    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"out_dir: {tmp_path / 'nothing'}\n")
    with pytest.raises(UserError, match="--stage 'nope'"):
        build(cfg, stage="nope")
    with pytest.raises(UserError, match="pose model .*last.pt not found"):
        build(cfg, stage="roi-heads")


def test_detector_boxes_on_face_free_media_become_hard_negatives(data_file, tmp_path):
    """roi_heads.hard_negative_detectors: every box the detector finds on the negatives' frames is a no-face
    sample ("detector-false", presence 0, no box target), on the split's own frames only. A clip with faces
    stands in for a face-free one here, so that the detector certainly finds boxes."""
    import cv2

    from edgepose.assets.build_config import RoiHeadsSection
    from edgepose.assets.build_roi import Samples, negative_detectors, video_negatives

    clip = data_file("videos/single_face.mp4")
    cfg = RoiHeadsSection(boxes_per_frame=2, frame_step=6, val_fraction=0.25,
                          hard_negative_detectors=[f"yunet={data_file('detectors/yunet/yunet_s_640_640.onnx')}"])
    dets = negative_detectors(cfg, tmp_path)
    assert len(dets) == 1
    train, val = Samples(), Samples()
    try:
        n_train = video_negatives(train, clip, cfg, np.random.default_rng(0), "train", dets)
        n_val = video_negatives(val, clip, cfg, np.random.default_rng(0), "val", dets)
    finally:
        dets[0].close()
    frames = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert n_train + n_val <= frames // cfg.frame_step + 2 and n_val < n_train
    for s in (train, val):
        hard = [j for j in range(len(s)) if s.kind[j] == "detector-false"]
        assert len(hard) >= 1  # the face of every chosen frame
        assert all(s.presence[j] == 0 and not np.isfinite(s.target[j]).any() for j in hard)
        assert sum(k == "no-face" for k in s.kind) == cfg.boxes_per_frame * len(s.images)
    # without detectors: random boxes only
    plain = Samples()
    video_negatives(plain, clip, RoiHeadsSection(boxes_per_frame=2, frame_step=6), np.random.default_rng(0), "val")
    assert "detector-false" not in plain.kind
