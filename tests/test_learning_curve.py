"""The teacher table's learning curve (`edgepose-bench methods --suite real --curve`): the power-law fit, the budget a
target needs with its bootstrap interval, the measured last step, and the one-line errors (docs/results/teachers.md)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepose.benchmarks.learning_curve import (PowerLaw, budget_for, curve_points, fit_power_law,
                                                learning_curve_report)
from edgepose.errors import UserError


def write_row(folder: Path, row: str, epochs: int, errors: np.ndarray) -> Path:
    """A finished row's table.json as the runner writes it: the budget and per-face errors per claim set."""
    (folder / row).mkdir(parents=True, exist_ok=True)
    claims = {"real-val": {"original": {"errors": [float(e) for e in errors]}}}
    (folder / row / "table.json").write_text(json.dumps(
        {"budget": {"epochs": epochs, "iters_per_epoch": 60, "batch": 32}, "claims": claims}))
    return folder


def curve_folders(tmp_path: Path, b: float, c: float, epochs=(8, 16, 32, 64), faces: int = 400, seed: int = 0):
    """Run folders whose per-face errors follow b * n^-c (the same faces at each budget, each face its own offset)."""
    rng = np.random.default_rng(seed)
    face = rng.normal(0.0, 0.8, faces)  # a face's difficulty, the same at every budget (paired points)
    out = []
    for e in epochs:
        n = e * 60
        out.append(write_row(tmp_path / f"e{e}", "baseline", e, b * n ** -c + face + rng.normal(0, 0.2, faces)))
    return out


def test_fit_recovers_a_power_law_and_inverts_it():
    n = np.array([480, 960, 1920, 3840])
    fit = fit_power_law(n, 12.0 * n ** -0.25)
    assert fit.b == pytest.approx(12.0, rel=1e-6) and fit.c == pytest.approx(0.25, rel=1e-6)
    assert fit(fit.iterations_to(2.0)) == pytest.approx(2.0, rel=1e-6)


def test_a_curve_that_does_not_fall_never_reaches_its_target():
    assert PowerLaw(b=5.0, c=-0.1).iterations_to(3.0) == math.inf
    assert PowerLaw(b=5.0, c=1e-6).iterations_to(3.0) == math.inf  # beyond any float: never, not an overflow
    with pytest.raises(UserError, match="two budgets"):
        fit_power_law(np.array([960, 960]), np.array([3.0, 3.1]))


def test_budget_estimate_and_interval_cover_the_truth(tmp_path):
    b, c, target = 20.0, 0.25, 3.0
    pts = curve_points(curve_folders(tmp_path, b, c), "baseline")
    assert [p.iterations for p in pts] == [480, 960, 1920, 3840]
    res = budget_for(pts, target, n_boot=400)
    truth = (b / target) ** (1 / c)  # about 1,975 iterations
    assert res["iterations_lo"] <= truth <= res["iterations_hi"]
    assert res["iterations"] == pytest.approx(truth, rel=0.25)
    step = res["last_step"]
    assert (step["from"], step["to"]) == (1920, 3840)
    expected = b * 3840 ** -c - b * 1920 ** -c  # about -0.49 deg
    assert step["change"] == pytest.approx(expected, abs=0.05) and step["lo"] < step["change"] < step["hi"] < 0


def test_report_reads_folders_averages_seeds_and_names_what_is_missing(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(2, 4, 50)
    write_row(tmp_path / "e16", "baseline", 16, base + 1.0)
    write_row(tmp_path / "e32", "baseline", 32, base + 0.5)
    write_row(tmp_path / "e32-s1", "baseline", 32, base + 0.7)
    text, res = learning_curve_report([tmp_path / "e32", tmp_path / "e16", tmp_path / "e32-s1"], "baseline", 2.0)
    assert [p["iterations"] for p in res["points"]] == [960, 1920, 1920]
    assert res["last_step"]["change"] == pytest.approx(-0.4, abs=1e-9)  # seeds at 1,920 averaged: +0.6 vs +1.0
    assert "| 960 |" in text and "Last step, measured" in text
    with pytest.raises(UserError, match="no finished row 'ldl'"):
        curve_points([tmp_path / "e16"], "ldl")
    write_row(tmp_path / "other", "baseline", 64, rng.uniform(2, 4, 30))
    with pytest.raises(UserError, match="different faces"):
        curve_points([tmp_path / "e16", tmp_path / "other"], "baseline")


def test_cli_prints_the_curve_and_refuses_without_a_target(tmp_path):
    folders = curve_folders(tmp_path, 20.0, 0.25, epochs=(8, 16))
    cmd = [sys.executable, "-m", "edgepose.cli.main", "bench", "methods", "--suite", "real", "--curve", *map(str, folders)]
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode != 0 and "--curve-target" in bad.stderr and "Traceback" not in bad.stderr
    png = tmp_path / "curve.png"
    ok = subprocess.run(cmd + ["--curve-target", "3", "--plot", str(png)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "To reach 3.00 deg" in ok.stdout and png.stat().st_size > 1000
