"""Former tracebacks are one ``error:`` line with exit status 2, and bad values fail at parse time
(docs/runtime.md "Failure behaviour").  Real processes, real files: random and half-copied models,
a read-only folder and a full file system (tmpfs mounts when running as root, else chmod)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from spawn_helpers import assert_one_error_line

REPO = Path(__file__).resolve().parents[1]
FP32 = REPO / "edgepose" / "assets" / "models" / "edgepose-default-fp32.onnx"


def _edgepose(*args, cwd=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "edgepose.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-models")
    rng = __import__("numpy").random.default_rng(0)
    (d / "random.onnx").write_bytes(rng.bytes(100_000))
    (d / "random.pt").write_bytes(rng.bytes(100_000))
    (d / "half.onnx").write_bytes(FP32.read_bytes()[: FP32.stat().st_size // 2])  # an interrupted copy
    return d


@pytest.mark.parametrize("name", ["random.onnx", "half.onnx", "random.pt"])
@pytest.mark.parametrize("command", ["run", "eval", "quantize"])
def test_a_damaged_model_is_one_error_line(command, name, bad_models, data_file, aflw_dir, tmp_path):
    model = bad_models / name
    if command == "quantize" and name.endswith(".pt"):
        pytest.skip("quantize takes ONNX only (its .pt refusal is its own one-line check)")
    args = {"run": ["run", data_file("videos/WolfgangLanger_Pexels.mp4"), "--model", model, "--max-frames", "2", "-q",
                    "--detector", "haar"],
            "eval": ["eval", model, "--data", f"aflw2000:{aflw_dir}", "--no-progress", "--output", tmp_path / "e.json"],
            "quantize": ["quantize", model, "--calib", aflw_dir, "-o", tmp_path / "q", "--no-report"]}[command]
    line = assert_one_error_line(_edgepose(*args))
    assert "truncated" in line and str(model.name) in line, line
    assert not (tmp_path / "q").exists() and not (tmp_path / "e.json").exists()


# ------------------------------------------------------------------ outputs that cannot be written
def _mount_tmpfs(path: Path, *options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=256k", *options)), "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture()
def readonly_dir(tmp_path):
    d = tmp_path / "ro"
    if _mount_tmpfs(d, "ro"):
        yield d
        subprocess.run(["umount", str(d)], check=False)
    elif os.geteuid() != 0:
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
    else:
        pytest.skip("running as root without a usable `mount`: no way to make a read-only folder")


@pytest.fixture()
def full_dir(tmp_path):
    d = tmp_path / "full"
    if not _mount_tmpfs(d):
        pytest.skip("needs root and `mount -t tmpfs` for a real full file system")
    try:
        with open(d / "filler", "wb") as fh:  # fill it for real, until the kernel says ENOSPC
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass
    yield d
    subprocess.run(["umount", str(d)], check=False)


@pytest.mark.parametrize("flag", ["--jsonl", "--dms-events", "--stats", "--output"])
def test_an_unwritable_output_fails_before_the_run(flag, readonly_dir, data_file, tmp_path):
    extra = ["--dms", "euro-ncap-2023"] if flag == "--dms-events" else []
    r = _edgepose("run", data_file("videos/WolfgangLanger_Pexels.mp4"), flag, readonly_dir / "out.x", *extra,
                  "--detector", "haar", "-q")
    line = assert_one_error_line(r)
    assert flag in line and "writable" in line, line
    assert "frames in" not in r.stderr  # refused at start: not one frame was processed


def test_a_full_disk_for_jsonl_fails_before_the_run(full_dir, data_file):
    r = _edgepose("run", data_file("videos/WolfgangLanger_Pexels.mp4"), "--jsonl", full_dir / "run.jsonl",
                  "--detector", "haar", "-q")
    line = assert_one_error_line(r)
    assert "--jsonl" in line and "no space left" in line, line
    assert not (full_dir / "run.jsonl").exists()


# ------------------------------------------------------------------ values validated at parse time
@pytest.mark.parametrize("args, fragment", [
    (["--threads", "0"], "--threads: must be >= 1, got 0"),
    (["--threads", "-2"], "--threads: must be >= 1, got -2"),
    (["--reconnects", "-1"], "--reconnects: must be >= 0, got -1"),
    (["--every", "0"], "--every: must be >= 1"),
    (["--max-frames", "0"], "--max-frames: must be >= 1"),
    (["--rtsp-port", "70000"], "--rtsp-port: must be in 1..65535"),
])
def test_run_rejects_bad_numbers_at_parse_time(args, fragment, capsys):
    from edgepose.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["run", "no-such-file.mp4", *args])  # parse errors come before the missing source
    assert exc.value.code == 2
    assert fragment in capsys.readouterr().err


def test_best_metric_is_validated_when_the_config_loads(repo_root, aflw_dir):
    from edgepose.config import ConfigError
    from edgepose.train import load_train_config

    cfg = repo_root / "configs" / "overfit-aflw2000.yaml"
    with pytest.raises(ConfigError, match=r"log.best_metric='gee' .* choose one of: .*\bge\b"):
        load_train_config(cfg, [f"data.train.root={aflw_dir}", "log.best_metric=gee"])
    assert load_train_config(cfg, [f"data.train.root={aflw_dir}", "log.best_metric=maev"]).log.best_metric == "maev"


def test_train_help_names_real_keys(capsys):
    from edgepose.cli.main import main
    from edgepose.train.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "data.train.path" not in text and "data.train.root=" in text
    import yaml

    shipped = yaml.safe_load((REPO / "configs" / "overfit-aflw2000.yaml").read_text())
    assert "root" in shipped["data"]["train"] and isinstance(TrainConfig().data.train, dict)


def test_training_removes_the_temporary_of_a_killed_checkpoint_write(repo_root, aflw_dir, tmp_path):
    from edgepose.train import load_train_config
    from edgepose.train.trainer import Trainer

    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".last.pt.k1ll3d.tmp"  # what atomic_write_bytes leaves when SIGKILLed mid-write
    stale.write_bytes(b"\0" * 4096)
    keep = run / "notes.txt"
    keep.write_text("mine")
    cfg = load_train_config(repo_root / "configs" / "overfit-aflw2000.yaml", [
        f"data.train.root={aflw_dir}", "data.val=null", f"output={run}", "epochs=1", "model.input_size=32",
        "model.name=mobilenetv3_small", "batch_size=2", "data.repeat=1", "max_iters_per_epoch=1",
        "log.tensorboard=false"])  # one iteration: the test is about the start of training
    Trainer(cfg).fit()
    assert not stale.exists() and keep.read_text() == "mine"
    assert not list(run.glob(".*.tmp")) and (run / "last.pt").is_file()
