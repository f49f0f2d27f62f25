"""The overfit recipe and the interim `edgepose demo` that runs it."""
from __future__ import annotations

import json
import time

import pytest


def test_demo_runs_train_then_eval(repo_root, aflw_dir, tmp_path, capsys):
    from edgepose.cli.main import main

    out = tmp_path / "demo"
    code = main(["demo", "--data-root", str(aflw_dir.parent), "--output", str(out),
                 "model.name=mobilenetv3_small", "model.input_size=64", "epochs=1", "data.repeat=1",
                 "log.tensorboard=false"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "[demo] 1/2" in stdout and "[demo] 2/2" in stdout and "rot+180" in stdout
    report = json.loads((out / "eval.json").read_text())
    assert set(report["datasets"]["aflw2000-sample"]["results"]) >= {"original", "rot+90", "rot+180", "flip"}
    assert (out / "best.pt").is_file() and (out / "metrics.csv").is_file()


def test_demo_without_data_is_a_clear_error(tmp_path, capsys):
    from edgepose.cli.main import main

    assert main(["demo", "--data-root", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "EDGEPOSE_TEST_DATA" in capsys.readouterr().err


@pytest.mark.slow
def test_overfit_recipe_reaches_3_degrees(repo_root, aflw_dir, tmp_path):
    """Done-when: < 3 deg mean MAE on the 6 fixtures within 5 minutes on 2 CPU cores (quiet machine)."""
    from edgepose.evaluation import evaluate, parse_variants
    from edgepose.train import load_train_config
    from edgepose.train.trainer import Trainer

    cfg = load_train_config(repo_root / "configs" / "overfit-aflw2000.yaml", [
        f"data.train.root={aflw_dir}", f"data.val.root={aflw_dir}", f"output={tmp_path / 'run'}"])
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.fit()
    elapsed = time.perf_counter() - t0
    best_mae = min(row["val_mae"] for row in trainer.history if "val_mae" in row)
    assert best_mae < 3.0, [row.get("val_mae") for row in trainer.history]
    report = evaluate(tmp_path / "run" / "best.pt", {"a": {"format": "aflw2000", "root": str(aflw_dir)}},
                      parse_variants("180"), progress=False)
    res = report["datasets"]["a"]["results"]
    assert res["original"]["metrics"]["mae"] < 3.0
    # a memorised upright model cannot read upside-down faces: the variant must show it
    assert res["rot+180"]["metrics"]["ge"] > 5 * res["original"]["metrics"]["ge"]
    print(f"overfit: best val MAE {best_mae:.2f} deg in {elapsed:.0f} s")
