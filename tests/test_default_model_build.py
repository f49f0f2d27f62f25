"""The default-model build's training options: a student initialised from its teacher's trunk
(``student.init``, ``student.init_lr_scale``, the ``efficientnet_b0_s4`` backbone), the training device,
parallel synthetic renders, the INT8 calibration method, and its cache / dependency guards."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgepose.errors import DependencyError, ModelError, UserError


def _stage4(net, x):
    import torch.nn.functional as F

    return net.blocks[:4](F.silu(net.bn1(net.conv_stem(x))))


def test_s4_student_takes_every_trunk_layer_of_an_efficientnet_b0():
    """Same names and shapes as B0's first four stages: after the copy its stride-16 features equal B0's."""
    from edgepose.models.registry import create_backbone
    from edgepose.models.transfer import copy_matching_weights

    torch.manual_seed(0)
    b0, s4 = create_backbone("efficientnet_b0").eval(), create_backbone("efficientnet_b0_s4").eval()
    with torch.no_grad():  # non-default BN statistics, so that buffers must travel too
        for m in b0.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 128, 128)
    assert not torch.allclose(_stage4(s4, x), _stage4(b0, x))
    copied = copy_matching_weights(s4, b0, what="b0")
    left = sorted(set(s4.state_dict()) - set(copied))
    assert left == ["bn2.bias", "bn2.num_batches_tracked", "bn2.running_mean", "bn2.running_var", "bn2.weight",
                    "conv_head.weight"] or left == ["bn2.bias", "bn2.running_mean", "bn2.running_var", "bn2.weight",
                                                    "conv_head.weight"]
    assert torch.allclose(_stage4(s4, x), _stage4(b0, x), atol=1e-5)
    assert s4.forward_features(x).shape == (2, s4.num_features)
    assert sum(p.numel() for p in s4.parameters()) < 400_000  # the package budget's reason for s4


def test_copy_refuses_a_source_with_no_common_layer():
    from edgepose.models.registry import create_backbone
    from edgepose.models.transfer import copy_matching_weights

    with pytest.raises(ModelError, match="no layer"):
        copy_matching_weights(create_backbone("efficientnet_b0_s4"), torch.nn.Linear(3, 3), what="a linear layer")


def test_initialised_layers_train_at_the_scaled_rate():
    from edgepose.assets.build_train import param_groups
    from edgepose.models.pose_model import PoseModel
    from edgepose.models.transfer import copy_matching_weights

    student = PoseModel.build("efficientnet_b0_s4", head="6d")
    teacher = PoseModel.build("efficientnet_b0", head="6d")
    copied = [f"backbone.{n}" for n in copy_matching_weights(student.backbone, teacher.backbone)]
    groups = param_groups(student, copied, 3e-3, 0.1)
    assert [g["lr"] for g in groups] == [3e-3, pytest.approx(3e-4)]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in student.parameters())  # each parameter exactly once
    head_ids = {id(p) for p in student.head.parameters()} | {id(student.backbone.conv_head.weight)}
    assert head_ids <= {id(p) for p in groups[0]["params"]}
    assert len(param_groups(student, [], 3e-3, 0.1)) == 1  # nothing initialised: one rate
    for bad in (0.0, -1.0, 11.0):
        with pytest.raises(UserError, match="init_lr_scale"):
            param_groups(student, copied, 3e-3, bad)


def test_training_device_names_the_problem():
    from edgepose.assets.build_config import BuildConfig
    from edgepose.assets.build_train import init_student, training_device

    assert training_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="not a torch device"):
        training_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            training_device("cuda")
    cfg = BuildConfig()
    cfg.student.init = "imagenet"
    with pytest.raises(UserError, match="student.init"):
        init_student(None, cfg, None)


def test_optim_seed_replicates_the_training_on_the_same_data():
    """optim.seed changes only the training's seed: the data sets keep the build's seed (their caches are keyed
    on it), so a replicate trains on the same faces."""
    from edgepose.assets.build_config import BuildConfig
    from edgepose.config import load_config

    cfg_path = Path(__file__).resolve().parents[1] / "configs" / "default-model" / "build.yaml"
    shipped = load_config(BuildConfig, cfg_path)
    assert shipped.optim.seed is None and shipped.training_seed() == shipped.seed
    replicate = load_config(BuildConfig, cfg_path, ["optim.seed=2"])
    assert replicate.seed == shipped.seed and replicate.training_seed() == 2 and isinstance(replicate.optim.seed, int)


def test_parallel_synthetic_renders_equal_the_serial_ones(tmp_path):
    from edgepose.assets.build_data import synth_set

    args = dict(n=7, seed=3, split="train", pose_range="wide", identities=20, size=64, full_fraction=0.3)
    one = synth_set(**args, cache=None, workers=1)
    two = synth_set(**args, cache=tmp_path / "s.npz", workers=2)
    assert one["images"].shape == (7, 64, 64, 3)
    for k in ("images", "boxes", "R"):
        assert np.array_equal(one[k], two[k]), k
    again = synth_set(**args, cache=tmp_path / "s.npz", workers=2)  # from the cache
    assert np.array_equal(again["images"], one["images"])


def test_synthetic_cache_refuses_other_render_settings(tmp_path):
    from edgepose.assets.build_data import synth_set

    args = dict(n=3, seed=1, split="train", pose_range="wide", identities=10, size=48, full_fraction=0.0)
    made = synth_set(**args, cache=tmp_path / "s.npz")
    with pytest.raises(UserError, match=r"size 48 \(asked: 64\).*delete that file"):
        synth_set(**{**args, "size": 64}, cache=tmp_path / "s.npz")
    with pytest.raises(UserError, match=r"pose_range 'wide' \(asked: 'full'\)"):
        synth_set(**{**args, "pose_range": "full"}, cache=tmp_path / "s.npz")
    # a cache from before the settings were recorded: checked by its count and size
    np.savez(tmp_path / "old.npz", **{k: made[k] for k in ("images", "boxes", "R")})
    assert len(synth_set(**args, cache=tmp_path / "old.npz")["images"]) == 3
    with pytest.raises(UserError, match="3 renders of 48 px.*3 of 64 px"):
        synth_set(**{**args, "size": 64}, cache=tmp_path / "old.npz")


def test_real_face_cache_refuses_another_student_size(data_file, tmp_path):
    import shutil

    from edgepose.assets.build_config import BuildConfig
    from edgepose.assets.build_data import real_faces
    from edgepose.metadata import file_sha256
    from edgepose.preprocess import PreprocessSpec

    (tmp_path / "media").mkdir()
    photo = shutil.copy(data_file("faces-aws/IMG_1232.JPG"), tmp_path / "media" / "a.jpg")
    manifest = json.dumps([{"path": str(photo), "sha256": file_sha256(photo)}])
    np.savez(tmp_path / "real.npz", images=np.zeros((2, 224, 224, 3), np.uint8), boxes=np.zeros((2, 4), np.float32),
             R=np.tile(np.eye(3, dtype=np.float32), (2, 1, 1)), teachers=np.asarray(["whenet"]),
             manifest=np.asarray(manifest))
    cfg = BuildConfig()
    cfg.data.real = ["media"]
    assert len(real_faces(cfg, tmp_path, None, PreprocessSpec(input_size=128), tmp_path)["images"]) == 2
    with pytest.raises(UserError, match="160 px student|needs 280 px"):
        real_faces(cfg, tmp_path, None, PreprocessSpec(input_size=160), tmp_path)


def test_missing_onnxslim_is_named_before_any_work(monkeypatch):
    import sys

    from edgepose.export.onnx_export import require_onnxslim

    monkeypatch.setitem(sys.modules, "onnxslim", None)  # import raises ImportError
    with pytest.raises(DependencyError, match=r"edgepose\[quant\]"):
        require_onnxslim()


def test_build_with_a_teacher_initialised_student_end_to_end(data_file, tmp_path):
    """One small build through `edgepose models build`: an EfficientNet-B0 teacher (an edgepose checkpoint; WHENet is not
    available offline) labels real faces and initialises an s4 student, which trains, exports and
    quantizes with percentile calibration (box-consistency term and quantization noise on); the sidecars record all
    of it."""
    import shutil

    from edgepose.cli.main import main
    from edgepose.metadata import load_metadata
    from edgepose.models.pose_model import PoseModel
    from edgepose.preprocess import PreprocessSpec

    photos, held_out = tmp_path / "photos", tmp_path / "held-out"
    photos.mkdir()
    held_out.mkdir()
    for name in ("IMG_1232.JPG", "IMG_1233.JPG", "IMG_1234.JPG", "IMG_1235.JPG"):
        shutil.copy(data_file(f"faces-aws/{name}"), photos / name)
    for name in ("IMG_1236.JPG", "IMG_1237.JPG"):
        shutil.copy(data_file(f"faces-aws/{name}"), held_out / name)
    torch.manual_seed(0)
    teacher = PoseModel.build("efficientnet_b0", head="6d", preprocess=PreprocessSpec(input_size=96))
    teacher.save_checkpoint(tmp_path / "teacher.pt")
    out = tmp_path / "out"
    rc = main(["models", "build", "--data-root", str(tmp_path), f"teacher={tmp_path / 'teacher.pt'}", f"out_dir={out}",
               "student.name=efficientnet_b0_s4", "student.input_size=64", "student.init=teacher",
               "student.init_lr_scale=0.1", f"data.real=[{photos}]", f"data.real_val=[{held_out}]",
               f"data.detector_model={data_file('detectors/yunet/yunet_s_640_640.onnx')}",
               "data.synth_n=8", "data.synth_val_n=4", "data.synth_size=64", "optim.epochs=1", "optim.batch_size=4",
               "optim.workers=0", "optim.consistency=0.5", "optim.consistency_target=original", "optim.quant_noise=1.0", "calib_crops=4",
               "quant_method=percentile", "threads=2",
               # the roi-heads stage as the build's last step, on the student just trained
               "roi_heads.enabled=true", f"roi_heads.negatives=[{data_file('videos/no_face.mp4')}]",
               "roi_heads.frame_step=10", "roi_heads.boxes_per_frame=3", "roi_heads.synth_positives=4",
               "roi_heads.epochs=2", "roi_heads.batch_size=8"])
    assert rc == 0
    fp32 = load_metadata(out / "edgepose-default-fp32.onnx")
    assert fp32.model == "efficientnet_b0_s4" and fp32.preprocess.input_size == 64
    from edgepose.metadata import has_roi_outputs

    assert has_roi_outputs(fp32) and all(has_roi_outputs(load_metadata(out / f"edgepose-default-int8-{p}.onnx"))
                                         for p in ("cpu", "tensorrt"))
    heads = fp32.provenance["parent_provenance"]["roi_heads"]
    assert heads["trunk"] == "frozen" and heads["negatives"]["no_face_boxes"] > 0
    assert 0.0 <= heads["validation"]["val_presence_acc_neg"] <= 1.0
    # the trunk and the pose head are the student's as trained: the stage only added the heads
    trained = PoseModel.from_checkpoint(out / "last.pt")
    with_heads = PoseModel.from_checkpoint(out / "roi-heads" / "last.pt")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(trained(x)["R"], with_heads(x)["R"])
    init = fp32.provenance["parent_provenance"]["initialised_from"]
    assert init["lr_scale"] == 0.1 and init["tensors"] > 100
    for prof in ("cpu", "tensorrt"):
        side = json.loads((out / f"edgepose-default-int8-{prof}.onnx.json").read_text())
        assert side["extra"]["quantization"]["method"] == "percentile"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and np.isfinite(rows[0]["synth_val_geodesic_mean"])
    assert 0.0 < rows[0]["train_consistency_deg"] < 180.0  # the box-consistency term ran and was logged
    assert 0.0 <= rows[0]["real_val_vs_teacher_mean"] <= 180.0  # held-out people, scored against the teacher
    assert len(np.load(out / "real-val.npz")["images"]) >= 2

    # the caches belong to their media: another data.real is refused instead of reusing old faces
    from edgepose.assets.build_config import BuildConfig
    from edgepose.assets.build_data import real_faces
    from edgepose.distill.teacher import load_teacher

    cfg = BuildConfig()
    cfg.teacher = [str(tmp_path / "teacher.pt")]
    cfg.data.real = [str(held_out)]
    with pytest.raises(UserError, match="other media"):
        real_faces(cfg, tmp_path, load_teacher(cfg.teacher), PreprocessSpec(input_size=64), out)


def test_held_out_media_must_not_repeat_a_training_file(data_file, tmp_path):
    import shutil

    from edgepose.assets.build_data import check_held_out

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(data_file("faces-aws/IMG_1232.JPG"), a / "one.jpg")
    shutil.copy(data_file("faces-aws/IMG_1233.JPG"), b / "two.jpg")
    check_held_out(tmp_path, ["a"], ["b"])  # different files: fine
    check_held_out(tmp_path, ["a"], [])  # no held-out set: nothing to check
    shutil.copy(data_file("faces-aws/IMG_1232.JPG"), b / "renamed-copy.jpg")
    with pytest.raises(UserError, match="shares 1 file"):
        check_held_out(tmp_path, ["a"], ["b"])
    with pytest.raises(UserError, match="evaluation data"):
        check_held_out(tmp_path, ["a"], ["aflw2000-sample"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_missing_gpu_stops_the_build_before_any_labelling(tmp_path, capsys):
    from edgepose.cli.main import main

    out = tmp_path / "out"
    assert main(["models", "build", "--data-root", str(tmp_path), "device=cuda", f"out_dir={out}"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not (out / "real.npz").exists()


def test_a_student_can_start_from_an_earlier_build(tmp_path):
    """student.init=<checkpoint>: backbone and head copied, also at another input size (fine-tuning at 160 px)."""
    from edgepose.assets.build_config import BuildConfig
    from edgepose.assets.build_train import init_student, param_groups
    from edgepose.models.pose_model import PoseModel
    from edgepose.preprocess import PreprocessSpec

    torch.manual_seed(0)
    earlier = PoseModel.build("efficientnet_b0_s4", head="6d", preprocess=PreprocessSpec(input_size=128))
    earlier.save_checkpoint(tmp_path / "last.pt")
    student = PoseModel.build("efficientnet_b0_s4", head="6d", preprocess=PreprocessSpec(input_size=160)).eval()
    cfg = BuildConfig()
    cfg.student.init = str(tmp_path / "last.pt")
    copied = init_student(student, cfg, None)
    assert set(copied) == {n for n, _ in student.named_parameters()} | {n for n, _ in student.named_buffers()}
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert torch.allclose(student(x)["R"], earlier.eval()(x)["R"], atol=1e-6)
    assert [g["lr"] for g in param_groups(student, copied, 1e-3, 1.0)] == [1e-3]  # all copied: one group
    cfg.student.init = str(tmp_path / "missing.pt")
    with pytest.raises(UserError, match="checkpoint not found"):
        init_student(student, cfg, None)


def test_a_bad_student_init_stops_the_build_before_any_labelling(tmp_path, capsys):
    from edgepose.cli.main import main

    out = tmp_path / "out"
    assert main(["models", "build", "--data-root", str(tmp_path), "student.init=imagenet", f"out_dir={out}"]) == 2
    assert "student.init='imagenet'" in capsys.readouterr().err
    assert main(["models", "build", "--data-root", str(tmp_path), "student.init_lr_scale=0", f"out_dir={out}"]) == 2
    assert "init_lr_scale" in capsys.readouterr().err
    assert main(["models", "build", "--data-root", str(tmp_path), "optim.consistency_target=teacher", f"out_dir={out}"]) == 2
    assert "optim.consistency_target='teacher'" in capsys.readouterr().err
    assert not (out / "real.npz").exists()


def test_build_resume_is_checked_before_any_work(tmp_path, capsys):
    """`edgepose models build --resume` continues the engine's last.pt; without one, or together with
    --export-only, it stops at once with one line (before the teachers load or any face is detected)."""
    from edgepose.cli.main import main

    rc = main(["models", "build", "--resume", f"out_dir={tmp_path / 'none'}", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "last.pt not found" in err and "Traceback" not in err
    rc = main(["models", "build", "--resume", "--export-only", f"out_dir={tmp_path}", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "give one of them" in err
    assert not (tmp_path / "none").exists()
