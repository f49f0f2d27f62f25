"""No code runs from a model file (docs/security.md): a real malicious pickle through every entry point.

The payload is a genuine ``torch.save`` file whose unpickling calls ``os.system("touch MARKER")``;
with full unpickling (``weights_only=False``) loading it creates the marker, which the first test
proves so that the others can fail."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
from spawn_helpers import assert_one_error_line


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_malicious_checkpoint(path, marker) -> None:
    """An edgepose-shaped checkpoint whose metadata entry runs a shell command when unpickled."""
    torch.save({"model": {}, "edgepose_metadata": _Payload(marker), "optimizer": {}, "epoch": 1}, str(path))


def _edgepose(*args, cwd=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "edgepose.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_the_payload_is_real(tmp_path):
    marker = tmp_path / "MARKER"
    write_malicious_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(str(tmp_path / "evil.pt"), weights_only=False)  # what the five entry points used to do
    assert marker.exists()


def _cases(tmp_path, evil, aflw_dir, repo_root):
    video_or_image = next(iter(sorted(aflw_dir.glob("*.jpg"))))
    fp32 = repo_root / "edgepose" / "assets" / "models" / "edgepose-default-fp32.onnx"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(evil, run_dir / "last.pt")
    shutil.copy(repo_root / "configs" / "overfit-aflw2000.yaml", run_dir / "config.yaml")
    return {
        "run": ["run", str(video_or_image), "--model", str(evil), "--max-frames", "1", "-q"],
        "eval": ["eval", str(evil), "--data", f"aflw2000:{aflw_dir}", "--no-progress"],
        "export": ["export", str(evil), "-o", str(tmp_path / "out.onnx")],
        "quantize-qat": ["quantize", str(fp32), "--calib", str(aflw_dir), "--qat", str(evil),
                         "-o", str(tmp_path / "q"), "--no-report"],
        "train-resume": ["train", "--resume", str(run_dir / "last.pt"), f"data.train.root={aflw_dir}",
                         f"data.val.root={aflw_dir}", f"output={tmp_path / 'train-out'}"],
    }


@pytest.mark.parametrize("entry", ["run", "eval", "export", "quantize-qat", "train-resume"])
def test_no_entry_point_unpickles_a_model_file(entry, tmp_path, aflw_dir, repo_root):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"
    write_malicious_checkpoint(evil, marker)
    proc = _edgepose(*_cases(tmp_path, evil, aflw_dir, repo_root)[entry], cwd=tmp_path)
    assert not marker.exists(), f"{entry} ran code from the checkpoint"
    line = assert_one_error_line(proc)
    assert "refusing to load" in line and "posix.system" in line and "unpickling can run code" in line, line
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "q").exists()


def test_edgepose_checkpoints_still_load_with_weights_only(tmp_path):
    """Our own files (model + metadata) pass the restricted unpickler."""
    from edgepose.models import create_model
    from edgepose.models.pose_model import PoseModel

    model = create_model("mobilenetv3_small", input_size=64)
    model.save_checkpoint(tmp_path / "m.pt")
    again = PoseModel.from_checkpoint(tmp_path / "m.pt")
    assert again.metadata().model == "mobilenetv3_small"


def test_training_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    from edgepose.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # a cached Gaussian half in numpy's state
    save_checkpoint(tmp_path / "last.pt", {"model": {}, "rng": {0: rng_state()}})
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "last.pt")["rng"][0])
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == expected


def test_numpy_values_are_stored_plain_so_the_checkpoint_reads_back(tmp_path):
    """A NumPy number in provenance (e.g. a QAT summary) used to need full unpickling to read back."""
    import numpy as np

    from edgepose.models import create_model
    from edgepose.models.pose_model import PoseModel

    model = create_model("mobilenetv3_small", input_size=32)
    model.provenance = {"qat": {"loss": np.float32(0.25), "layers": np.int64(7), "curve": np.arange(3.0)}}
    model.save_checkpoint(tmp_path / "m.pt", epoch=np.int64(2), extra_array=np.ones(2))
    again = PoseModel.from_checkpoint(tmp_path / "m.pt")
    assert again.provenance["qat"] == {"loss": 0.25, "layers": 7, "curve": [0.0, 1.0, 2.0]}
    raw = torch.load(str(tmp_path / "m.pt"), weights_only=True)
    assert raw["epoch"] == 2 and torch.equal(raw["extra_array"], torch.ones(2, dtype=torch.float64))
