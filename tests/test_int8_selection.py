"""scripts/int8_selection.py's choice rule (the v22 / v23 decision rules' selection on training faces)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "int8_selection.py"


@pytest.fixture(scope="module")
def sel():
    spec = importlib.util.spec_from_file_location("int8_selection", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(shift_cpu, shift_trt, err_cpu=0.3, err_trt=0.5):
    return {"cpu": {"shift": shift_cpu, "from_fp32": err_cpu}, "tensorrt": {"shift": shift_trt, "from_fp32": err_trt}}


def test_lowest_mean_shift_wins_and_off_is_never_chosen(sel):
    res = {sel.key(None, 99.999): _row(0.01, 0.01), sel.key(0.0, 99.999): _row(0.09, 0.15),
           sel.key(0.5, 99.999): _row(0.08, 0.12), sel.key(1.0, 99.999): _row(0.07, 0.14)}
    assert sel.choose(res, [None, 0.0, 0.5, 1.0], [99.999], guard=None) == (0.5, 99.999)


def test_the_guard_drops_settings_that_move_away_from_fp32(sel):
    res = {sel.key(None, 99.999): _row(0.10, 0.17), sel.key(0.5, 99.999): _row(0.08, 0.12),
           sel.key(None, 99.99): _row(0.09, 0.14, err_cpu=0.47), sel.key(0.5, 99.99): _row(0.05, 0.10, err_cpu=0.36)}
    assert sel.choose(res, [None, 0.5], [99.999, 99.99], guard=0.05) == (0.5, 99.999)  # 0.36 > 0.3 + 0.05
    assert sel.choose(res, [None, 0.5], [99.999, 99.99], guard=0.1) == (0.5, 99.99)


def test_ties_go_to_the_larger_percentile_then_the_smaller_strength(sel):
    res = {sel.key(a, p): _row(0.1, 0.1) for a in (None, 0.5, 1.0) for p in (99.999, 99.99)}
    assert sel.choose(res, [None, 0.5, 1.0], [99.99, 99.999], guard=0.05) == (0.5, 99.999)
