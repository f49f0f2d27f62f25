"""edgepose-train end to end on the 6 AFLW2000 fixture images (small models, few iterations)."""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgepose.train import load_train_config
from edgepose.train.trainer import Trainer


def _cfg(repo_root, aflw_dir, out, *extra):
    root = str(aflw_dir)
    return load_train_config(repo_root / "configs" / "overfit-aflw2000.yaml", [
        f"data.train.root={root}", f"data.val.root={root}", f"output={out}", *extra])


def test_loss_decreases_strongly_and_outputs_are_written(repo_root, aflw_dir, tmp_path):
    cfg = _cfg(repo_root, aflw_dir, tmp_path / "run", "model.input_size=64", "epochs=4", "data.repeat=5",
               "log.val_every=2")
    trainer = Trainer(cfg)
    result = trainer.fit()
    losses = [row["train_loss"] for row in trainer.history]
    assert len(losses) == 4
    assert losses[-1] < 0.35 * losses[0], losses
    # validation ran on epochs 2 and 4 with the eval metrics
    assert "val_ge" not in trainer.history[0] and "val_ge" in trainer.history[1]
    assert result["val_mae"] < 25.0
    run = tmp_path / "run"
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.csv"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "lr", "images_per_s", "val_mae", "val_ge", "val_maev"} <= set(rows[0])
    assert int(rows[0]["images"]) == 30
    # the resolved config round-trips; best.pt is a deployable checkpoint with metadata
    again = load_train_config(run / "config.yaml")
    assert again.model.input_size == 64 and again.data.repeat == 5
    from edgepose.models.pose_model import PoseModel

    model = PoseModel.from_checkpoint(run / "best.pt")
    meta = model.metadata()
    assert meta.preprocess.input_size == 64 and meta.preprocess.crop.scale == 1.0
    best = torch.load(run / "best.pt", weights_only=True)
    assert "optimizer" not in best and best["epoch"] in (2, 4)
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporaries


def _final_weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_resume_after_interruption_matches_uninterrupted_run(repo_root, aflw_dir, tmp_path):
    extra = ["model.name=mobilenetv3_small", "model.input_size=64", "epochs=3", "data.repeat=2",
             "batch_size=4", "log.tensorboard=false", "data.augment={flip_p: 0.5, rotate_p: 0.5, rotate_deg: 20}"]
    full = Trainer(_cfg(repo_root, aflw_dir, tmp_path / "full", *extra))
    full.fit()

    def stop_after_first(epoch, row):
        if epoch == 0:
            raise KeyboardInterrupt

    part_cfg = _cfg(repo_root, aflw_dir, tmp_path / "part", *extra)
    with pytest.raises(KeyboardInterrupt):
        Trainer(part_cfg, on_epoch_end=[stop_after_first]).fit()
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = Trainer(part_cfg, resume=tmp_path / "part")
    resumed.fit()
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]

    a, b = _final_weights(tmp_path / "full" / "last.pt"), _final_weights(tmp_path / "part" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    rows = list(csv.DictReader((tmp_path / "part" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    np.testing.assert_allclose(float(rows[-1]["train_loss"]), full.history[-1]["train_loss"], rtol=1e-5)


def test_amp_bf16_and_channels_last_on_cpu(repo_root, aflw_dir, tmp_path):
    cfg = _cfg(repo_root, aflw_dir, tmp_path / "amp", "model.name=mobilenetv3_small", "model.input_size=64",
               "epochs=1", "data.repeat=2", "amp=true", "channels_last=true", "log.tensorboard=false")
    result = Trainer(cfg).fit()
    assert np.isfinite(result["train_loss"]) and np.isfinite(result["val_ge"])


class _Proc:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(*args, cwd, capsys=None):
    """In-process (fast) when capsys is given, else a real subprocess."""
    if capsys is not None:
        from edgepose.cli.main import main

        code = main(["train", *args])
        out = capsys.readouterr()
        return _Proc(code, out.out, out.err)
    p = subprocess.run([sys.executable, "-m", "edgepose.cli.main", "train", *args], cwd=cwd,
                       capture_output=True, text=True, timeout=120)
    return _Proc(p.returncode, p.stdout, p.stderr)


@pytest.mark.parametrize("overrides, message", [
    (["data.train.root=/nonexistent/aflw"], "dataset path not found"),
    (["data.train.format=pascal_voc"], "unknown dataset format"),
    (["optim.lrr=0.1"], "unknown config key"),
    (["data.train.colour=1"], "unknown key"),
])
def test_cli_errors_are_one_line(repo_root, aflw_dir, tmp_path, overrides, message, capsys):
    root = str(aflw_dir)
    proc = _cli(str(repo_root / "configs" / "overfit-aflw2000.yaml"), f"data.val.root={root}",
                f"data.train.root={root}", f"output={tmp_path / 'r'}", *overrides, cwd=repo_root, capsys=capsys)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_empty_dataset_and_missing_resume(repo_root, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("image,pitch,yaw,roll\n")  # a header and no rows
    proc = _cli(str(repo_root / "configs" / "overfit-aflw2000.yaml"), "data.train={format: folder, labels: "
                f"{labels}}}", "data.val=null", f"output={tmp_path / 'r'}", cwd=repo_root, capsys=capsys)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "empty dataset" in proc.stderr
    folder = tmp_path / "no-images"
    folder.mkdir()
    proc = _cli(str(repo_root / "configs" / "overfit-aflw2000.yaml"), f"data.train.root={folder}",
                "data.val=null", f"output={tmp_path / 'r'}", cwd=repo_root, capsys=capsys)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "AFLW2000" in proc.stderr
    proc = _cli("--resume", str(tmp_path / "nothing-here"), cwd=repo_root, capsys=capsys)
    assert proc.returncode == 2 and "no such run" in proc.stderr


def test_print_config_in_a_real_process(repo_root):
    proc = _cli(str(repo_root / "configs" / "overfit-aflw2000.yaml"), "epochs=7", "--print-config", cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    assert "epochs: 7" in proc.stdout and "name: resnet18" in proc.stdout


def test_cli_resume_extends_a_finished_run(repo_root, aflw_dir, tmp_path, capsys):
    out = tmp_path / "cli-run"
    common = ["model.name=mobilenetv3_small", "model.input_size=64", "data.repeat=1", "log.tensorboard=false"]
    proc = _cli(str(repo_root / "configs" / "overfit-aflw2000.yaml"), f"data.train.root={aflw_dir}",
                f"data.val.root={aflw_dir}", f"output={out}", "epochs=1", *common, cwd=repo_root, capsys=capsys)
    assert proc.returncode == 0, proc.stderr
    assert "best:" in proc.stdout
    # --resume reads the run's own config.yaml; overrides still apply (here: train one more epoch)
    proc = _cli("--resume", str(out), "epochs=2", cwd=repo_root, capsys=capsys)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2


def test_validate_scores_euler_mae_against_the_datasets_labels(tmp_path):
    """A (10, 91, 5) label with a (10, 89, 5) prediction is 0.67 deg MAE, not 120 (yaw folding)."""
    from types import SimpleNamespace

    import cv2

    from edgepose import geometry
    from edgepose.data import FolderReader, PoseDataset
    from edgepose.preprocess import PreprocessSpec
    from edgepose.train.engine import collate

    cv2.imwrite(str(tmp_path / "face.png"), np.full((40, 40, 3), 127, np.uint8))
    (tmp_path / "val.csv").write_text("image,pitch,yaw,roll\nface.png,10,91,5\n")
    val = PoseDataset(FolderReader(tmp_path / "val.csv"), PreprocessSpec(input_size=32))
    R_pred = torch.from_numpy(geometry.euler_to_matrix([10.0, 89.0, 5.0])).float()

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return {"R": R_pred.expand(len(x), 3, 3)}

    fake = SimpleNamespace(device=torch.device("cpu"), cfg=SimpleNamespace(channels_last=False),
                           _val_loader=lambda: torch.utils.data.DataLoader(val, batch_size=1, collate_fn=collate))
    m = Trainer._validate(fake, Fixed())
    assert m["val_mae"] == pytest.approx(2.0 / 3, abs=1e-4) and m["val_ge"] == pytest.approx(2.0, abs=1e-3)
