"""Run a suite end to end and write its reports.

``run_suite`` measures the model grid and the pipeline rows, samples tegrastats around them
on a Jetson, and writes JSON / CSV / Markdown / PNG into ``out_dir``.  The JSON is rewritten
(atomically) after every row, and Ctrl-C stops the grid but still writes every report with
the rows measured so far (``"interrupted": true``).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from edgepose.errors import UserError

from .accuracy import load_eval_set
from .artifacts import ArtifactBuilder
from .board import read_board_state
from .model_bench import error_text, run_model_grid
from .pipeline_bench import run_pipeline_grid
from .platform_info import platform_fingerprint
from .report import write_all, write_json
from .schema import new_report
from .suite import Suite
from .tegrastats import TegrastatsSampler

__all__ = ["run_suite", "start_power_sampler"]

log = logging.getLogger(__name__)


def start_power_sampler(suite: Suite) -> tuple[TegrastatsSampler | None, str]:
    """tegrastats in the background when the suite asks for power and the board has it."""
    if suite.power == "off":
        return None, "power sampling off in the suite"
    if not TegrastatsSampler.available():
        if suite.power == "on":
            raise UserError("the suite sets power: on but tegrastats is not on PATH; run on a Jetson or set power: auto")
        return None, "tegrastats not found (not a Jetson): no power columns"
    return TegrastatsSampler(suite.power_interval_ms).start(), f"tegrastats --interval {suite.power_interval_ms}"


def _set_threads(suite: Suite) -> None:
    if suite.threads:
        try:
            import torch

            torch.set_num_threads(int(suite.threads))
        except ImportError:
            pass


def run_suite(suite: Suite, suite_file: Path, out_dir: str | Path, *, work_dir: str | Path | None = None,
              command: str = "edgepose-bench", progress: bool = True, plots: bool = True,
              only: str | None = None, peers: list[str] | None = None) -> tuple[dict, dict[str, Path]]:
    from edgepose.config import to_dict

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report = new_report({"name": suite.name, "path": str(suite_file), "config": to_dict(suite)},
                        platform_fingerprint(), read_board_state().to_dict(), command)
    _set_threads(suite)
    json_path = out_dir / "bench.json"

    def on_row(row) -> None:
        report["rows"].append(row.to_dict())
        write_json(report, json_path)  # a crash or Ctrl-C never loses measured rows

    sampler, power_note = start_power_sampler(suite)
    report["power_sampler"] = power_note
    builder = ArtifactBuilder(suite, work_dir or out_dir / "artifacts", progress=progress)
    try:
        eval_sets, problems = [], []
        for ds in suite.accuracy:
            try:
                es = load_eval_set(ds)
                eval_sets.append(es)
                report.setdefault("accuracy_sets", []).append({"name": es.name, "n": len(es.samples), "format": ds.format,
                                                               "boxes": es.boxes, "sha256": es.fingerprint})
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                problems.append(f"accuracy set {ds.name or ds.format} unavailable: {error_text(exc)}")
                log.warning("%s", problems[-1])
        if problems:
            report["accuracy_problems"] = problems
        eval_unavailable = "; ".join(problems) if problems else (None if suite.accuracy else "the suite has no accuracy set")
        if only in (None, "model"):
            run_model_grid(suite, builder, eval_sets, eval_unavailable, sampler, on_row=on_row, peers=peers)
        if only in (None, "pipeline"):
            run_pipeline_grid(suite, builder, sampler, on_row=on_row, peers=peers)
    except KeyboardInterrupt:
        report["interrupted"] = True
        log.warning("interrupted: writing the reports with the %d rows measured so far", len(report["rows"]))
    finally:
        if sampler is not None:
            report["power_samples_total"] = len(sampler.stop())
        report["duration_s"] = round(time.perf_counter() - t_start, 2)
        try:
            report["platform"]["loadavg_end"] = [float(x) for x in os.getloadavg()]
        except OSError:
            pass
        paths = write_all(report, out_dir, plots=plots)
    return report, paths
