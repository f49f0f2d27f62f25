"""edgepose-bench end to end on a tiny real ONNX model: rows and statuses, reports, CLI gate.

The model is a 3-node ONNX graph (global average pool -> linear -> 6D) with an edgepose
sidecar: ONNX Runtime really runs it, it loads through edgepose.runtime like any exported
model, and it is fast enough for a unit test.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgepose.benchmarks.backends import availability
from edgepose.cli.main import main


def _tiny_onnx(path: Path, size: int = 32) -> Path:
    from onnx import helper
    from onnx_graphs import save_pose_graph

    rng = np.random.default_rng(0)
    init = {"W": 0.05 * rng.standard_normal((3, 6)),
            "b": np.array([1, 0, 0, 0, 1, 0])}  # ~identity rotation, input-dependent tilt
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W", "b"], ["sixd"])]
    return save_pose_graph(path, "tiny-test", nodes, init, size)


def _suite(tmp_path: Path, data_root: Path | None, model: Path, **extra) -> Path:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx file")
    (tmp_path / "broken.onnx.json").write_text((model.parent / (model.name + ".json")).read_text())
    suite = {
        "name": "unit", "threads": 1, "warmup": 2, "iters": 8, "max_seconds": 1.0, "batch_sizes": [1, 3],
        "backends": ["ort-cpu", "ort-cuda", "tensorrt"], "precisions": ["fp32"],
        "peers": [{"name": "tiny", "role": "student", "source": {"path": str(model)}},
                  {"name": "broken", "role": "student", "source": {"path": str(broken)}},
                  {"name": "missing", "role": "teacher", "source": {"path": str(tmp_path / "nope.pt")}}],
        "accuracy": ([{"name": "aflw", "format": "aflw2000", "root": str(data_root / "aflw2000-sample")},
                      {"name": "synth", "format": "synth", "max_samples": 5,
                       "options": {"seed": 3, "split": "test", "pose_range": "driver", "size": 96, "ssaa": 1}}]
                     if data_root else []),
        "pipeline": {"enabled": data_root is not None, "peers": ["tiny"], "precisions": ["fp32"],
                     "backends": ["ort-cpu"], "warmup_frames": 2, "max_frames": 12, "encode": False,
                     "video": str(data_root / "videos" / "single_face.mp4") if data_root else "",
                     "detector": "yunet",
                     "detector_model": str(data_root / "detectors/yunet/yunet_s_320_320.onnx") if data_root else None},
        "power": "auto",
    }
    suite.update(extra)
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _optional_data_root() -> Path | None:
    """The shared data when present: the status / gate tests run without it, accuracy and pipeline need it."""
    from conftest import _data_root

    root = _data_root()
    needed = ("aflw2000-sample", "videos/single_face.mp4", "detectors/yunet/yunet_s_320_320.onnx")
    return root if all((root / n).exists() for n in needed) else None


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    data_root = _optional_data_root()
    tmp = tmp_path_factory.mktemp("bench")
    model = _tiny_onnx(tmp / "tiny.onnx")
    suite = _suite(tmp, data_root, model)
    out = tmp / "out"
    rc = main(["bench", "--suite", str(suite), "--out", str(out), "--quiet"])
    return rc, out, suite, data_root


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "bench.json").read_text())["rows"]


def test_run_writes_every_format(bench_run):
    rc, out, _, _ = bench_run
    assert rc == 0
    for name in ("bench.json", "bench.csv", "bench.md", "bench_latency_accuracy.png", "bench_pipeline_stages.png"):
        assert (out / name).stat().st_size > 100, name
    doc = json.loads((out / "bench.json").read_text())
    assert doc["schema"] == "edgepose.bench/1" and doc["duration_s"] > 0
    assert doc["platform"]["loadavg_end"] is not None and "versions" in doc["platform"]


def test_ok_rows_have_latency_accuracy_and_memory(bench_run):
    _, out, _, data_root = bench_run
    ok = [r for r in _rows(out) if r["name"] == "tiny" and r["kind"] == "model" and r["status"] == "ok"]
    assert sorted(r["batch"] for r in ok) == [1, 3]
    for r in ok:
        lat = r["latency_ms"]
        assert 2 <= lat["n"] <= 8 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["fps"] == pytest.approx(r["batch"] * 1000 / lat["mean"])
        assert r["size_mb"] > 0 and r["input_size"] == 32
        assert r["peak_mem_mb"] is None or r["peak_mem_mb"] >= 0
        acc = r["accuracy"]
        if data_root is None:
            assert acc.get("skipped")  # no accuracy set: the row says so
            continue
        assert acc["n"] == 6 and 0 <= acc["mae"] < 180 and acc["reference"] == "ort-cpu fp32"
        assert acc["mae"] == pytest.approx(np.mean([acc["mae_pitch"], acc["mae_yaw"], acc["mae_roll"]]))
        doc = json.loads((out / "bench.json").read_text())
        if "accuracy_problems" not in doc:  # the synthetic renderer ran: the second set has its own block
            synth = acc["other_sets"]["synth"]
            assert synth["n"] == 5 and synth["reference"] == "ort-cpu fp32" and synth["ge"] >= 0


def test_missing_backend_is_skipped_and_broken_model_failed(bench_run):
    _, out, _, _ = bench_run
    rows = _rows(out)
    for backend in ("ort-cuda", "tensorrt"):
        reason = availability(backend)
        row = next(r for r in rows if r["name"] == "tiny" and r["backend"] == backend)
        if reason:
            assert row["status"] == "skipped" and row["reason"] == reason
    broken = [r for r in rows if r["name"] == "broken" and r["backend"] == "ort-cpu"]
    assert broken and all(r["status"] == "failed" and "onnxruntime cannot load" in r["reason"] for r in broken)
    (missing,) = [r for r in rows if r["name"] == "missing"]
    assert missing["status"] == "skipped" and "nope.pt not found" in missing["reason"]


def test_pipeline_row(bench_run):
    _, out, _, data_root = bench_run
    if data_root is None:
        pytest.skip("test data not found; set EDGEPOSE_TEST_DATA to the shared/data folder")
    (row,) = [r for r in _rows(out) if r["kind"] == "pipeline"]
    assert row["status"] == "ok", row["reason"]
    pl = row["pipeline"]
    assert pl["frames"] == 12 and pl["fps"] > 0
    assert {"decode", "detect", "track", "pose", "smooth"} <= set(pl["stages_ms"])
    stage_sum = sum(s["mean"] for s in pl["stages_ms"].values())
    assert stage_sum <= pl["e2e_ms"]["mean"] * 1.05 + 0.5  # stages are parts of the frame time
    assert pl["e2e_ms"]["n"] == 12 and pl["late_frames"] is not None


def test_compare_gate_exit_codes(bench_run, tmp_path):
    _, out, suite, _ = bench_run
    doc = json.loads((out / "bench.json").read_text())

    def baseline(factor: float) -> Path:
        d = json.loads(json.dumps(doc))
        for r in d["rows"]:
            for block in (r.get("latency_ms") or {}, (r.get("pipeline") or {}).get("e2e_ms") or {}):
                for k in ("p50", "p90", "p99", "mean"):
                    if k in block:
                        block[k] *= factor
        p = tmp_path / f"base{factor}.json"
        p.write_text(json.dumps(d))
        return p

    args = ["bench", "--suite", str(suite), "--out", str(tmp_path / "o"), "--quiet", "--only", "model",
            "--peers", "tiny", "--set", "accuracy=[]"]
    # a baseline 100x faster than anything this run can measure -> regression -> exit 1
    assert main(args + ["--compare", str(baseline(0.01))]) == 1
    # a baseline 100x slower -> every ratio far below 1.2 -> exit 0
    assert main(args + ["--compare", str(baseline(100.0))]) == 0


def test_user_errors(tmp_path, capsys):
    assert main(["bench", "--suite", "no-such-suite"]) == 2
    assert "unknown suite" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something/1"}')
    assert main(["bench", "--compare", str(bad)]) == 2
    assert "schema" in capsys.readouterr().err
    (tmp_path / "s.yaml").write_text("name: x\npeers: []\n")
    assert main(["bench", "--suite", str(tmp_path / "s.yaml")]) == 2
    assert "no peers" in capsys.readouterr().err
    (tmp_path / "t.yaml").write_text("name: x\nbackends: [cuda-magic]\npeers: [{name: a, source: {arch: resnet18}}]\n")
    assert main(["bench", "--suite", str(tmp_path / "t.yaml")]) == 2
    assert "unknown backend" in capsys.readouterr().err
    assert main(["bench", "--list-suites"]) == 0
    assert "default" in capsys.readouterr().out


def test_floor_mae_and_strict_gate(bench_run, capsys):
    from argparse import Namespace

    from edgepose.cli.bench import _gate

    _, out, _, data_root = bench_run
    doc = json.loads((out / "bench.json").read_text())
    base = dict(compare=None, max_regression=1.2, compare_metric="p50", floor_mae=None, strict=False)
    assert _gate(doc, Namespace(**base)) == 0
    assert _gate(doc, Namespace(**{**base, "strict": True})) == 1  # the broken peer failed
    assert "strict" in capsys.readouterr().out
    if data_root is not None:
        assert _gate(doc, Namespace(**{**base, "floor_mae": 1000.0})) == 0
        assert _gate(doc, Namespace(**{**base, "floor_mae": 0.0})) == 1
        assert "floor: tiny" in capsys.readouterr().out


def test_ctrl_c_keeps_measured_rows(tmp_path):
    """SIGINT during the grid: exit 130, every report written with the rows measured so far."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from spawn_helpers import default_sigint

    model = _tiny_onnx(tmp_path / "tiny.onnx")
    suite = _suite(tmp_path, None, model, iters=100000, max_seconds=1.5, warmup=0, batch_sizes=[1, 2, 3, 4, 5, 6],
                   backends=["ort-cpu"])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edgepose.cli.main", "bench", "--suite", str(suite), "--out",
                             str(out), "--quiet", "--no-plots"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 240  # generous: a starved CPU (nice 19 beside builds) took > 60 s
        while time.monotonic() < deadline:
            if (out / "bench.json").is_file() and json.loads((out / "bench.json").read_text())["rows"]:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    doc = json.loads((out / "bench.json").read_text())
    assert doc["interrupted"] is True and 1 <= len(doc["rows"]) < 6
    assert (out / "bench.csv").is_file() and (out / "bench.md").is_file()


def test_accuracy_sets_are_fingerprinted(bench_run):
    _, out, _, data_root = bench_run
    if data_root is None:
        pytest.skip("test data not found; set EDGEPOSE_TEST_DATA to the shared/data folder")
    sets = json.loads((out / "bench.json").read_text())["accuracy_sets"]
    assert sets[0]["name"] == "aflw" and sets[0]["n"] == 6 and len(sets[0]["sha256"]) == 16
    assert f"data sha256 {sets[0]['sha256']}" in (out / "bench.md").read_text()


def test_shipped_default_model_peer_runs(tmp_path):
    """A `default_model` peer: FP32 plus the shipped INT8 files, measured as shipped (no calibration set needed)."""
    from edgepose.defaults import default_pose_model

    model = _tiny_onnx(tmp_path / "tiny.onnx")
    suite = _suite(tmp_path, None, model, iters=3, warmup=1, max_seconds=0.5, batch_sizes=[1], backends=["ort-cpu"],
                   precisions=["fp32", "int8-cpu", "int8-tensorrt"], power="off",
                   peers=[{"name": "default", "role": "student", "source": {"default_model": "fp32"}}],
                   pipeline={"enabled": False})
    out = tmp_path / "out"
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--quiet", "--no-plots"]) == 0
    rows = {r["precision"]: r for r in _rows(out) if r["kind"] == "model"}
    assert set(rows) == {"fp32", "int8-cpu", "int8-tensorrt"}
    for prec, r in rows.items():
        assert r["status"] == "ok", r["reason"]
        assert Path(r["artifact"]) == default_pose_model(prec)  # not re-quantized into the work folder
        assert r["latency_ms"]["n"] == 3 and r["size_mb"] == pytest.approx(default_pose_model(prec).stat().st_size / 1e6,
                                                                             abs=1e-3)
    assert rows["int8-cpu"]["size_mb"] < rows["fp32"]["size_mb"]
    assert not list((out / "artifacts").glob("*.onnx"))  # nothing was derived
    md = (out / "bench.md").read_text()
    assert sum(l.startswith("| default | ort-cpu |") for l in md.splitlines()) == 3


def test_default_suite_lists_the_imported_peers():
    from edgepose.benchmarks.suite import load_suite

    suite, _ = load_suite("default")
    imported = {p.name: p.source for p in suite.peers if p.role == "imported-teacher"}
    assert set(imported) == {"whenet", "3ddfa-v2", "fsanet"}
    assert imported["3ddfa-v2"].weights and imported["fsanet"].import_teacher == "fsanet"


def test_imported_peer_without_weights_is_skipped_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "empty-cache"))
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    suite = _suite(tmp_path, None, model, batch_sizes=[1], backends=["ort-cpu"], power="off", pipeline={"enabled": False},
                   peers=[{"name": "fsanet", "role": "imported-teacher",
                           "source": {"import_teacher": "fsanet", "weights": [str(tmp_path / "no-such-dir")]}}])
    out = tmp_path / "out"
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--quiet", "--no-plots"]) == 0
    rows = [r for r in _rows(out) if r["kind"] == "model"]
    assert rows and all(r["status"] == "skipped" for r in rows)
    assert "edgepose import fsanet PATH" in rows[0]["reason"] and "no-such-dir" in rows[0]["reason"]


@pytest.mark.slow
def test_imported_peer_from_the_data_folder_runs(data_file, tmp_path, monkeypatch):
    """3DDFA_V2 from `weights:` (empty cache): imported, exported, measured and scored like any peer."""
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "empty-cache"))
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    suite = _suite(tmp_path, None, model, iters=3, warmup=1, max_seconds=0.5, batch_sizes=[1], backends=["ort-cpu"],
                   power="off", pipeline={"enabled": False},
                   accuracy=[{"name": "aflw", "format": "aflw2000", "root": str(data_file("aflw2000-sample"))}],
                   peers=[{"name": "3ddfa-v2", "role": "imported-teacher",
                           "source": {"import_teacher": "3ddfa-v2",
                                      "weights": [str(data_file("teachers/3ddfa_v2/mb05_120x120.pth"))]}}])
    out = tmp_path / "out"
    assert main(["bench", "--suite", str(suite), "--out", str(out), "--quiet", "--no-plots"]) == 0
    rows = [r for r in _rows(out) if r["kind"] == "model" and r["backend"] == "ort-cpu"]
    assert rows and rows[0]["status"] == "ok", rows[0]["reason"]


def test_default_suite_measures_the_shipped_model_and_leaves_out_whenet_int8(tmp_path):
    """issue 16: the default suite has a pipeline row for the shipped model, and WHENet's own INT8 (calibrated
    on other crops than it is evaluated on) is a skipped row with the reason, not a broken artifact."""
    from edgepose.benchmarks.artifacts import ArtifactBuilder
    from edgepose.benchmarks.suite import load_suite

    suite, _ = load_suite("default")
    assert "default" in suite.pipeline.peers
    whenet = next(p for p in suite.peers if p.name == "whenet")
    art = ArtifactBuilder(suite, tmp_path).get(whenet, "onnx", "int8-cpu", None)
    assert art.status == "skipped" and "calibrated on other faces" in art.reason
    assert not list(tmp_path.iterdir())  # nothing was built for it
    with pytest.raises(Exception, match="skip_precisions names unknown precision"):
        load_suite("default", ["peers.0.skip_precisions={int9: x}"])
