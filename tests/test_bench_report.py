"""Bench reports: versioned JSON schema, CSV, Markdown, PNG plots, the Pareto front, compare."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edgepose.benchmarks.compare import compare_reports, format_comparison
from edgepose.benchmarks.plots import pareto_front
from edgepose.benchmarks.platform_info import platform_fingerprint
from edgepose.benchmarks.report import CSV_COLUMNS, STAGES, load_report, markdown, write_all
from edgepose.benchmarks.schema import SCHEMA, ReportError, Row, new_report, row_key, validate_report
from edgepose.benchmarks.stats import latency_stats


def _lat(center: float, n: int = 50) -> dict:
    rng = np.random.default_rng(int(center * 100))
    return latency_stats(center + rng.gamma(2.0, center * 0.05, n))


def make_report() -> dict:
    rep = new_report({"name": "unit", "path": "unit.yaml", "config": {}}, platform_fingerprint(),
                     {"nvpmodel_mode": None, "nvpmodel_id": None, "jetson_clocks": None, "errors": []}, "pytest")
    rows = []
    for name, base, mae in (("teacher", 20.0, 4.0), ("student", 2.0, 5.0), ("big", 40.0, 6.0)):
        for backend, precision, f, dm in (("torch", "fp32", 1.5, 0.0), ("ort-cpu", "fp32", 1.0, 0.0),
                                          ("ort-cpu", "int8-cpu", 0.4, 0.3)):
            lat = _lat(base * f)
            rows.append(Row("model", name, "student", backend, precision, batch=1, input_size=128, size_mb=4.0,
                            latency_ms=lat, fps=1000 / lat["mean"],
                            accuracy={"dataset": "set", "n": 6, "mae_pitch": mae, "mae_yaw": mae, "mae_roll": mae,
                                      "mae": mae + dm, "ge": 2 * mae, "delta_mae": dm, "ref_ge": dm}))
    rows.append(Row("model", "student", "student", "tensorrt", "fp16", status="skipped", reason="tensorrt is not installed"))
    rows.append(Row("model", "broken", "student", "ort-cpu", "fp32", status="failed", reason="ModelError: cannot load"))
    stages = {s: latency_stats([1.0 + i, 2.0 + i, 3.0 + i]) for i, s in enumerate(STAGES)}
    rows.append(Row("pipeline", "student", "student", "ort-cpu", "fp32", latency_ms=latency_stats([30, 31, 40]),
                    fps=30.0, pipeline={"frames": 3, "fps": 30.0, "stages_ms": stages, "e2e_ms": latency_stats([30, 31, 40]),
                                        "dropped_frames": 0, "late_frames": 1}))
    rep["rows"] = [r.to_dict() for r in rows]
    rep["duration_s"] = 1.0
    return rep


def test_json_schema_and_round_trip(tmp_path):
    rep = make_report()
    paths = write_all(rep, tmp_path)
    doc = load_report(paths["json"])
    assert doc["schema"] == SCHEMA == "edgepose.bench/1"
    assert doc["rows"] == json.loads(json.dumps(rep["rows"]))
    for key in ("cpu", "cpu_cores", "versions"):
        assert key in doc["platform"]
    for v in ("edgepose", "python", "onnxruntime", "torch", "tensorrt", "cuda", "jetpack", "l4t"):
        assert v in doc["platform"]["versions"]  # None where absent, but always present
    assert [Row.from_dict(r).to_dict() for r in doc["rows"]] == doc["rows"]


def test_validate_report_errors(tmp_path):
    rep = make_report()
    with pytest.raises(ReportError, match="schema"):
        validate_report({**rep, "schema": "other/1"})
    with pytest.raises(ReportError, match="re-run"):
        validate_report({**rep, "schema": "edgepose.bench/2"})
    bad = json.loads(json.dumps(rep))
    bad["rows"][0]["status"] = "skipped"
    bad["rows"][0]["reason"] = ""
    with pytest.raises(ReportError, match="without a reason"):
        validate_report(bad)
    with pytest.raises(ValueError):
        Row("model", "x", status="maybe")
    (tmp_path / "r.csv").write_text("a,b\n")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_report(tmp_path / "r.csv")
    with pytest.raises(ReportError, match="not found"):
        load_report(tmp_path / "missing.json")


def test_csv_and_markdown(tmp_path):
    rep = make_report()
    paths = write_all(rep, tmp_path)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == len(rep["rows"])
    ok = [r for r in rows if r["status"] == "ok" and r["kind"] == "model"]
    assert all(float(r["p50_ms"]) <= float(r["p99_ms"]) for r in ok)
    assert {r["status"] for r in rows} == {"ok", "skipped", "failed"}
    pipe = next(r for r in rows if r["kind"] == "pipeline")
    assert float(pipe["decode_ms"]) == pytest.approx(2.0) and pipe["late_frames"] == "1"
    md = paths["md"].read_text()
    assert md == markdown(rep)
    assert "| peer | backend | precision |" in md and "## Pipeline" in md
    assert "tensorrt is not installed" in md and "ModelError: cannot load" in md  # reasons are footnotes
    table = [l for l in md.splitlines() if l.startswith("| teacher")]
    assert len(table) == 3 and all(l.count("|") == md.splitlines()[md.splitlines().index(table[0]) - 1].count("|")
                                   for l in table)


def test_pngs_exist_and_are_not_blank(tmp_path):
    import matplotlib.image as mpimg

    paths = write_all(make_report(), tmp_path)
    for key in ("latency_accuracy_png", "pipeline_stages_png"):
        p = paths[key]
        assert p.stat().st_size > 10_000
        img = mpimg.imread(p)
        assert img.shape[0] > 200 and img.shape[1] > 400
        assert img[..., :3].std() > 0.05  # drawn content, not an empty canvas


def test_pareto_front():
    pts = [(1.0, 5.0), (2.0, 4.0), (3.0, 4.5), (0.5, 9.0), (4.0, 1.0), (2.0, 4.0)]
    front = pareto_front(pts)
    assert [pts[i] for i in front] == [(0.5, 9.0), (1.0, 5.0), (2.0, 4.0), (2.0, 4.0), (4.0, 1.0)]
    assert 2 not in front  # (3, 4.5) is slower and less accurate than (2, 4)


def _scaled(rep: dict, factor: float) -> dict:
    out = json.loads(json.dumps(rep))
    for r in out["rows"]:
        for block in (r.get("latency_ms") or {}, (r.get("pipeline") or {}).get("e2e_ms") or {}):
            for k in ("p50", "p90", "p99", "mean"):
                if k in block:
                    block[k] *= factor
    return out


def test_compare_ratios_and_threshold():
    rep = make_report()
    same = compare_reports(rep, rep, 1.2)
    n_ok = sum(r["status"] == "ok" for r in rep["rows"])
    assert len(same) == n_ok and all(c.ratio == pytest.approx(1.0) and not c.regression for c in same)
    slower = compare_reports(_scaled(rep, 1.5), rep, 1.2)
    assert all(c.ratio == pytest.approx(1.5) and c.regression for c in slower)
    assert not any(c.regression for c in compare_reports(_scaled(rep, 1.1), rep, 1.2))
    assert not any(c.regression for c in compare_reports(_scaled(rep, 1.5), rep, 2.0))
    broke = json.loads(json.dumps(rep))
    broke["rows"][0].update(status="failed", reason="boom")
    comps = compare_reports(broke, rep, 1.2)
    assert any(c.regression and "now failed" in c.note for c in comps)
    text = format_comparison(slower, 1.2)
    assert "REGRESSION" in text and f"{len(slower)} of {len(slower)}" in text
    assert row_key(rep["rows"][0]) != row_key(rep["rows"][1])


def test_packaged_suites_load():
    from edgepose.benchmarks.suite import list_suites, load_suite

    names = list_suites()
    assert {"default", "jetson"} <= set(names)
    for name in names:
        suite, path = load_suite(name)
        assert path.is_file() and suite.peers and suite.batch_sizes
    suite, _ = load_suite("default", ["iters=7", "batch_sizes=[1,8]"])
    assert suite.iters == 7 and suite.batch_sizes == [1, 8]


def test_runtime_device_per_backend():
    from edgepose.benchmarks.backends import availability, runtime_device

    assert runtime_device("ort-cpu", "cuda") == "cpu" and runtime_device("ort-trt") == "tensorrt"
    assert runtime_device("torch", "cuda") == "cuda"
    assert "not a ort-cpu deployment option" in availability("ort-cpu", "fp16")
    assert availability("ort-cpu", "fp32") is None


def test_power_columns_only_with_power():
    rep = make_report()
    assert "W in" not in markdown(rep)
    ok = next(r for r in rep["rows"] if r["status"] == "ok" and r["kind"] == "model")
    ok["power"] = {"samples": 40, "total_w": 5.3, "compute_w": 0.8, "energy_mj_per_inference": 12.5, "max_temp_c": 48.9}
    md = markdown(rep)
    header = next(l for l in md.splitlines() if l.startswith("| peer | backend | precision | batch"))
    line = next(l for l in md.splitlines() if "| 5.30 | 0.80 | 12.50 | 48.9 |" in l)
    assert "W in" in header and "max °C" in header and header.count("|") == line.count("|")


def test_markdown_shows_timed_samples_and_capped_rows():
    """n per row; `k/N` when max_seconds stopped a row before the requested iterations (weak p99)."""
    rep = make_report()
    rep["suite"]["config"] = {"iters": 50}
    capped = next(r for r in rep["rows"] if r["status"] == "ok" and r["kind"] == "model")
    capped["latency_ms"] = latency_stats([5.0, 5.5, 6.0, 7.0, 9.0, 30.0])
    md = markdown(rep)
    lines = md.splitlines()
    header = next(l for l in lines if l.startswith("| peer | backend | precision | batch"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    n_col = cols.index("n")
    model_lines = [l for l in lines if l.startswith(("| teacher", "| student", "| big"))
                   and l.count("|") == header.count("|")]
    cells = [[c.strip() for c in l.strip("|").split("|")][n_col] for l in model_lines]
    assert cells.count("6/50") == 1  # the capped row
    assert cells.count("50") == len(cells) - 1  # full rows: plain n
    assert "max_seconds" in md
    rep["suite"]["config"] = {}  # no requested count known (older reports): plain n everywhere
    assert "6/50" not in markdown(rep) and "| 6 |" in markdown(rep)


def test_default_suite_has_the_shipped_model_as_peer():
    """The shipped default student is a peer, resolved through the package (works from an install)."""
    from edgepose.benchmarks.artifacts import ArtifactBuilder
    from edgepose.benchmarks.suite import load_suite
    from edgepose.defaults import MODELS_DIR, default_pose_model

    suite, _ = load_suite("default")
    (peer,) = [p for p in suite.peers if p.source.default_model]
    assert peer.source.default_model == "fp32" and not peer.source.path  # no checkout-relative path
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        builder = ArtifactBuilder(suite, tmp)
        base = builder.checkpoint(peer, None)
        assert base.ok and base.path == default_pose_model("fp32") and base.path.parent == MODELS_DIR
        for prec in ("int8-cpu", "int8-tensorrt"):  # the shipped INT8 files, not a re-quantization
            art = builder.get(peer, "onnx", prec, base.input_size)
            assert art.ok and art.path == default_pose_model(prec) and art.precision == prec


def test_default_model_source_errors(tmp_path):
    from edgepose.benchmarks.suite import load_suite
    from edgepose.config import ConfigError

    (tmp_path / "s.yaml").write_text("name: x\npeers: [{name: d, source: {default_model: int4}}]\n")
    with pytest.raises(ConfigError, match="default_model must be one of"):
        load_suite(str(tmp_path / "s.yaml"))
    (tmp_path / "t.yaml").write_text("name: x\npeers: [{name: d, source: {default_model: fp32, arch: resnet18}}]\n")
    with pytest.raises(ConfigError, match="exactly one of"):
        load_suite(str(tmp_path / "t.yaml"))
