"""The one training engine (edgepose/train/engine.py): one optimizer step for the whole code base,
exact resume with a weight average, the metrics log, and the best-checkpoint rule."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgepose.train.config import OptimConfig, SchedConfig
from edgepose.train.engine import Engine, EngineConfig
from edgepose.methods.method import Method

REPO = Path(__file__).resolve().parents[1]


class _Net(nn.Module):
    """A tiny pose-model stand-in: what the engine needs is state_dict, metadata() and parameters."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)

    def metadata(self):
        from edgepose.metadata import ArtifactMetadata

        return ArtifactMetadata(model="toy", head="none")


class _Regression(Method):
    name = "toy-regression"

    def training_step(self, batch, model):
        loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        return loss, {"mse": float(loss.detach())}


class _Data(torch.utils.data.Dataset):
    def __init__(self, n=40):
        g = np.random.default_rng(0)
        self.x = g.normal(size=(n, 8)).astype(np.float32)
        self.y = (self.x[:, :3] * 2 + np.sin(self.x[:, 3:6])).astype(np.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        # the augmentation draws from numpy's global state, which the engine re-seeds per epoch
        return {"x": torch.from_numpy(self.x[i] + np.random.normal(scale=0.05, size=8).astype(np.float32)),
                "y": torch.from_numpy(self.y[i])}


def _run(out: Path, epochs=3, resume=None, stop_after=None, **kw):
    cfg = EngineConfig(epochs=epochs, optim=OptimConfig(lr=1e-2), sched=SchedConfig(warmup_iters=3), ema=0.9,
                       device="cpu", seed=3, output=str(out), progress=False, **kw)
    callbacks = []
    if stop_after is not None:
        def stop(epoch, row):
            if epoch + 1 == stop_after:
                raise KeyboardInterrupt
        callbacks.append(stop)
    eng = Engine(cfg, _Regression(None), on_epoch_end=callbacks)
    torch.manual_seed(0)
    net = _Net()
    loader = eng.loader(_Data(), batch_size=8, workers=0)

    def validate(model):
        x = torch.from_numpy(_Data().x)
        return {"val_mse": float(((model(x) - torch.from_numpy(_Data().y)) ** 2).mean())}

    eng.fit(net, loader, validate=validate, resume=resume)
    return eng


def test_resume_with_a_weight_average_is_exact_and_the_log_matches_the_checkpoint(tmp_path):
    full = _run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "part", stop_after=1)
    rows = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    resumed = _run(tmp_path / "part", resume=tmp_path / "part")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    for key in ("model", "trainable"):  # the average (what is shipped) and the trained weights
        for k in a[key]:
            torch.testing.assert_close(a[key][k], b[key][k], rtol=0, atol=1e-6, msg=f"{key}.{k}")
    rows = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["val_mse"] == pytest.approx(full.history[-1]["val_mse"], rel=1e-5)
    assert {"train_loss", "train_mse", "lr", "images", "images_per_s", "epoch_s", "val_mse"} <= set(rows[0])
    # the average is what was validated: it differs from the trained weights
    assert any(not torch.equal(b["model"][k], b["trainable"][f"{k}"]) for k in b["model"]
               if b["model"][k].dtype.is_floating_point)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_best_checkpoint_follows_the_metric_and_a_wrong_metric_name_is_one_line(tmp_path):
    eng = _run(tmp_path / "a", best_metric="val_mse")
    best = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    values = [r["val_mse"] for r in eng.history]
    assert best["epoch"] == 1 + int(np.argmin(values)) and "optimizer" not in best
    from edgepose.errors import UserError

    with pytest.raises(UserError, match="best metric 'val_ge' is not a validation metric; choose one of: val_mse"):
        _run(tmp_path / "b", best_metric="val_ge")


def test_without_output_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = EngineConfig(epochs=1, device="cpu", progress=False)
    eng = Engine(cfg, _Regression(None))
    eng.fit(_Net(), eng.loader(_Data(), 8))
    assert list(tmp_path.iterdir()) == [] and len(eng.history) == 1


def test_exactly_one_module_owns_the_optimizer_step():
    """No loop of its own anywhere: backward(), optimizer construction and optimizer.step() live in
    train/engine.py only (teacher training, distillation, the default-model build and QAT drive it)."""
    pattern = re.compile(r"\.backward\(|torch\.optim\.(SGD|Adam|AdamW|RMSprop)\(|\bopt(imizer)?\.step\(")
    roots = [REPO / d for d in ("edgepose", "quantize", "pipelines", "benchmarks", "jetson")]
    owners = sorted({str(p.relative_to(REPO)) for r in roots for p in r.rglob("*.py")
                     if pattern.search(p.read_text(encoding="utf-8"))})
    assert owners == ["edgepose/train/engine.py"]
