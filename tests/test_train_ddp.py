"""DDP through torchrun: 2 gloo processes on the CPU, same entry point as users run."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import torch


def test_torchrun_two_cpu_processes(repo_root, aflw_dir, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", EDGEPOSE_LOG="INFO")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "edgepose.cli.main", "train", str(repo_root / "configs" / "overfit-aflw2000.yaml"),
           f"data.train.root={aflw_dir}", f"data.val.root={aflw_dir}", f"output={out}",
           "model.name=mobilenetv3_small", "model.input_size=64", "epochs=2", "data.repeat=2",
           "batch_size=3", "log.tensorboard=false"]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    # both ranks joined the gloo group
    assert "DDP rank 0/2" in log and "DDP rank 1/2" in log
    # rank 0 alone saved: one "checkpoint saved" line per epoch
    assert log.count("checkpoint saved: epoch 1 ") == 1 and log.count("checkpoint saved: epoch 2 ") == 1
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 2
    # the DistributedSampler split the 12 samples of an epoch between the ranks (6 + 6)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["images"]) for r in rows] == [12, 12]
    assert not list(out.glob(".*.tmp"))


def test_torchrun_distill_two_cpu_processes(repo_root, aflw_dir, tmp_path):
    """Distillation runs on the same engine, so torchrun gives it DDP: both ranks train, rank 0 writes."""
    from edgepose.models import create_model

    teacher = tmp_path / "teacher.pt"
    torch.manual_seed(0)
    create_model("mobilenetv3_small", head="6d", input_size=64).save_checkpoint(teacher)
    out = tmp_path / "distill"
    env = dict(os.environ, OMP_NUM_THREADS="1", EDGEPOSE_LOG="INFO")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "edgepose.cli.main", "distill", f"teacher=[{teacher}]", "student.name=mobilenetv3_small",
           "student.input_size=64", f"data.labelled=[{{format: aflw2000, root: {aflw_dir}}}]",
           "optim.epochs=2", "optim.batch_size=2", "export_onnx=false", f"out_dir={out}", "--no-progress"]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "DDP rank 0/2" in log and "DDP rank 1/2" in log
    assert log.count("checkpoint saved: epoch 2 ") == 1
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 2
    import json

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # the six fixtures split 3 + 3 between the ranks; distill drops a partial last batch: 2 + 2 per epoch
    assert [r["images"] for r in rows] == [4, 4]
