"""Write a bench report as JSON (the source of truth), CSV (one flat row each) and Markdown."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from edgepose.metadata import atomic_write_text

from .schema import STAGES, validate_report

__all__ = ["STAGES", "CSV_COLUMNS", "flat_row", "write_json", "write_csv", "write_markdown", "markdown",
           "write_all", "load_report"]


CSV_COLUMNS = [
    "kind", "name", "role", "backend", "precision", "device", "batch", "input_size", "status", "reason",
    "size_mb", "build_s", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "n_iters", "fps", "peak_mem_mb",
    "mem_kind", "acc_dataset", "acc_n", "mae_pitch", "mae_yaw", "mae_roll", "mae", "ge", "delta_mae",
    "delta_ge", "ref_ge", "ref_max_abs_deg", "power_w", "compute_w", "mj_per_inference", "max_temp_c",
    "gr3d_pct", "emc_pct", "power_samples", "frames", "dropped_frames", "late_frames", "e2e_p50_ms",
    "e2e_p99_ms", "pipeline_fps", *[f"{s}_ms" for s in STAGES], "nvpmodel", "jetson_clocks", "tensorrt",
    "jetpack", "l4t", "artifact", "model",
]


def _r(v: Any, nd: int = 3):
    if isinstance(v, float):
        return round(v, nd) if math.isfinite(v) else None
    return v


def flat_row(row: dict, report: dict | None = None) -> dict:
    lat, acc, pw, pl = row.get("latency_ms") or {}, row.get("accuracy") or {}, row.get("power") or {}, \
        row.get("pipeline") or {}
    out = {k: row.get(k) for k in ("kind", "name", "role", "backend", "precision", "device", "batch", "input_size",
                                   "status", "reason", "size_mb", "build_s", "fps", "peak_mem_mb", "mem_kind",
                                   "artifact", "model")}
    out.update({"p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "p99_ms": lat.get("p99"),
                "mean_ms": lat.get("mean"), "std_ms": lat.get("std"), "n_iters": lat.get("n")})
    out.update({"acc_dataset": acc.get("dataset"), "acc_n": acc.get("n"),
                **{k: acc.get(k) for k in ("mae_pitch", "mae_yaw", "mae_roll", "mae", "ge", "delta_mae", "delta_ge",
                                           "ref_ge", "ref_max_abs_deg")}})
    out.update({"power_w": pw.get("total_w"), "compute_w": pw.get("compute_w"),
                "mj_per_inference": pw.get("energy_mj_per_inference"), "max_temp_c": pw.get("max_temp_c"),
                "gr3d_pct": pw.get("gr3d_pct"), "emc_pct": pw.get("emc_pct"), "power_samples": pw.get("samples")})
    e2e = pl.get("e2e_ms") or {}
    stages = pl.get("stages_ms") or {}
    out.update({"frames": pl.get("frames"), "dropped_frames": pl.get("dropped_frames"),
                "late_frames": pl.get("late_frames"), "e2e_p50_ms": e2e.get("p50"), "e2e_p99_ms": e2e.get("p99"),
                "pipeline_fps": pl.get("fps")})
    out.update({f"{s}_ms": (stages.get(s) or {}).get("mean") for s in STAGES})
    if report is not None:
        board, versions = report.get("board") or {}, (report.get("platform") or {}).get("versions") or {}
        out.update({"nvpmodel": board.get("nvpmodel_mode"), "jetson_clocks": board.get("jetson_clocks"),
                    "tensorrt": versions.get("tensorrt"), "jetpack": versions.get("jetpack"), "l4t": versions.get("l4t")})
    return {k: _r(out.get(k)) for k in CSV_COLUMNS}


def write_json(report: dict, path: str | Path) -> Path:
    validate_report(report)
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
    return Path(path)


def write_csv(report: dict, path: str | Path) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in report["rows"]:
        w.writerow(flat_row(row, report))
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def _f(v, fmt: str = "{:.2f}", empty: str = "-") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return empty
    return fmt.format(v)


def _platform_lines(report: dict) -> list[str]:
    p = report.get("platform") or {}
    v = p.get("versions") or {}
    b = report.get("board") or {}
    gpu = (p.get("gpu") or {}).get("name") or "none"
    jet = p.get("jetson") or {}
    load = p.get("loadavg_start")
    lines = [f"- **Machine:** {p.get('cpu')} ({p.get('cpu_cores')} cores, {p.get('machine')}), GPU: {gpu}"
             + (f", Jetson: {jet.get('model')} (L4T {jet.get('l4t')}, JetPack {jet.get('jetpack_major')})" if jet else ""),
             "- **Versions:** " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None),
             f"- **Board:** nvpmodel {b.get('nvpmodel_mode') or 'n/a'}, jetson_clocks "
             f"{ {True: 'on', False: 'off'}.get(b.get('jetson_clocks'), 'n/a') }; power: "
             f"{report.get('power_sampler') or 'n/a'}"]
    if load:
        end = p.get("loadavg_end")
        lines.append(f"- **Load average** (1/5/15 min) at start: {', '.join(f'{x:.2f}' for x in load)}"
                     + (f"; at end: {', '.join(f'{x:.2f}' for x in end)}" if end else "")
                     + (" - other jobs shared the CPU, latencies are pessimistic" if load[0] > 0.5 * (p.get('cpu_cores') or 1) else ""))
    return lines


def _other_sets_lines(rows: list[dict], report: dict) -> list[str]:
    """One table per extra accuracy set (accuracy is per artifact: one line per peer/backend/precision/size)."""
    seen, by_set = set(), {}
    for r in rows:
        for name, blk in ((r.get("accuracy") or {}).get("other_sets") or {}).items():
            key = (name, r["name"], r["backend"], r["precision"], r.get("input_size"))
            if key not in seen:
                seen.add(key)
                by_set.setdefault(name, []).append((r, blk))
    out: list[str] = []
    for name, items in by_set.items():
        sets = {a["name"]: a for a in report.get("accuracy_sets") or []}
        sha = (sets.get(name) or {}).get("sha256", "?")
        boxes = _boxes_note(sets.get(name))
        out += [f"Accuracy on `{name}` (n={items[0][1].get('n')}{boxes}, data sha256 {sha}, degrees):", "",
                "| peer | backend | precision | input | MAE p/y/r | MAE | GE | Δ MAE | vs ref |",
                "|---|---|---|--:|---|--:|--:|--:|--:|"]
        for r, b in items:
            pyr = f"{_f(b.get('mae_pitch'), '{:.1f}')}/{_f(b.get('mae_yaw'), '{:.1f}')}/{_f(b.get('mae_roll'), '{:.1f}')}"
            out.append(f"| {r['name']} | {r['backend']} | {r['precision']} | {r.get('input_size') or '-'} | {pyr} "
                       f"| {_f(b.get('mae'))} | {_f(b.get('ge'))} | {_f(b.get('delta_mae'), '{:+.2f}')} "
                       f"| {_f(b.get('ref_ge'))} |")
        out.append("")
    return out


def _skipped_lines(rows: list[dict], note) -> list[str]:
    """Skipped rows grouped by reason: one line per reason instead of one table row per cell."""
    if not rows:
        return []
    groups: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        what = "whole peer" if r["backend"] == "-" else f"{r['backend']} {r['precision']}"
        size = f"@{r['input_size']}" if r.get("input_size") else ""
        groups.setdefault(r.get("reason", ""), {}).setdefault(f"{r['name']}{size}", [])
        if what not in groups[r.get("reason", "")][f"{r['name']}{size}"]:
            groups[r.get("reason", "")][f"{r['name']}{size}"].append(what)
    out = ["Not measured here (rows with status `skipped` in the JSON / CSV):", ""]
    for reason, peers in groups.items():
        cells = "; ".join(f"{p}: {', '.join(w)}" for p, w in peers.items())
        out.append(f"- {cells} {note(reason)}")
    return out + [""]


def _samples_cell(lat: dict, requested: int | None) -> str:
    """Timed calls of a row; ``k/N`` when the time cap stopped it before the N requested."""
    n = lat.get("n")
    if n is None:
        return "-"
    return f"{n}/{requested}" if requested and n < requested else str(n)


def markdown(report: dict) -> str:
    rows = report["rows"]
    suite = report.get("suite") or {}
    out = [f"# edgepose-bench: {suite.get('name', 'suite')}", "",
           f"`{report.get('command')}` - {report.get('created')}, {_f(report.get('duration_s'), '{:.0f}')} s", ""]
    out += _platform_lines(report) + [""]
    notes: list[str] = []
    # power columns only where a row has power (a Jetson with tegrastats): keeps CPU tables narrow
    has_power = any((r.get("power") or {}).get("total_w") is not None for r in rows)

    def table_line(text: str, power_cols: int) -> str:
        return text if has_power else text.rsplit("|", power_cols + 1)[0] + "|"

    def note(text: str) -> str:
        if text not in notes:  # the same reason (e.g. a missing GPU) gets one number
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    model_rows = [r for r in rows if r["kind"] == "model"]
    requested = ((suite.get("config") or {}).get("iters"))
    if model_rows:
        out += ["## Pose model", "",
                *(["Accuracy set: " + ", ".join(f"`{a['name']}` (n={a['n']}{_boxes_note(a)}, data sha256 {a.get('sha256', '?')})"
                                                for a in report["accuracy_sets"][:1]), ""]
                  if report.get("accuracy_sets") else []),
                "Latency in ms per call of `batch` faces (p50 / p90 / p99, mean ± std); faces/s = batch / mean. "
                "MAE / GE in degrees on the accuracy set; Δ = difference to the FP32 reference of the same peer; "
                "vs ref = mean geodesic angle between this row's and the reference's predictions. "
                "n = timed calls; `k/N`: the time cap (`max_seconds`) stopped the row after k of the N requested "
                "calls, so its p99 rests on few samples (with under 100, p99 is about the slowest call).", "",
                table_line("| peer | backend | precision | batch | input | status | size MB | p50 | p90 | p99 | mean ± std "
                           "| n | faces/s | peak MB | MAE p/y/r | MAE | GE | Δ MAE | vs ref | W in | W cpu+gpu | mJ/inf "
                           "| max °C |", 4),
                table_line("|---|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
                           4)]
        for r in (r for r in model_rows if r["status"] != "skipped"):
            lat, acc, pw = r.get("latency_ms") or {}, r.get("accuracy") or {}, r.get("power") or {}
            status = r["status"] if r["status"] == "ok" else f"{r['status']} {note(r.get('reason', ''))}"
            pyr = (f"{_f(acc.get('mae_pitch'), '{:.1f}')}/{_f(acc.get('mae_yaw'), '{:.1f}')}/"
                   f"{_f(acc.get('mae_roll'), '{:.1f}')}") if acc.get("mae") is not None else "-"
            if acc.get("skipped"):
                pyr = f"- {note(acc['skipped'])}"
            out.append(table_line(
                f"| {r['name']} | {r['backend']} | {r['precision']} | {r['batch']} | {r.get('input_size') or '-'} "
                f"| {status} | {_f(r.get('size_mb'), '{:.1f}')} | {_f(lat.get('p50'))} | {_f(lat.get('p90'))} "
                f"| {_f(lat.get('p99'))} | {_f(lat.get('mean'))} ± {_f(lat.get('std'))} "
                f"| {_samples_cell(lat, requested)} | {_f(r.get('fps'), '{:.0f}')} "
                f"| {_f(r.get('peak_mem_mb'), '{:.0f}')} | {pyr} | {_f(acc.get('mae'))} | {_f(acc.get('ge'))} "
                f"| {_f(acc.get('delta_mae'), '{:+.2f}')} | {_f(acc.get('ref_ge'))} | {_f(pw.get('total_w'))} "
                f"| {_f(pw.get('compute_w'))} | {_f(pw.get('energy_mj_per_inference'))} "
                f"| {_f(pw.get('max_temp_c'), '{:.1f}')} |", 4))
        out.append("")
        out += _other_sets_lines(model_rows, report)
        out += _skipped_lines([r for r in model_rows if r["status"] == "skipped"], note)
    pipe_rows = [r for r in rows if r["kind"] == "pipeline"]
    if pipe_rows:
        out += ["## Pipeline (edgepose run, end to end)", "",
                "Frame-to-output latency (decode wait -> overlay/encode done) in ms; stages are means per frame. "
                "dropped = frames of the file not processed; late = frames slower than the source frame interval "
                "(a live camera would drop them).", "",
                table_line("| peer | backend | precision | status | frames | FPS | e2e p50 | e2e p99 | dropped | late | "
                           + " | ".join(STAGES) + " | W in | mJ/frame | max °C |", 3),
                table_line("|---|---|---|---|--:|--:|--:|--:|--:|--:|" + "--:|" * len(STAGES) + "--:|--:|--:|", 3)]
        for r in pipe_rows:
            pl, pw = r.get("pipeline") or {}, r.get("power") or {}
            e2e, stages = pl.get("e2e_ms") or {}, pl.get("stages_ms") or {}
            status = r["status"] if r["status"] == "ok" else f"{r['status']} {note(r.get('reason', ''))}"
            out.append(table_line(f"| {r['name']} | {r['backend']} | {r['precision']} | {status} | {_f(pl.get('frames'), '{}')} "
                       f"| {_f(pl.get('fps'), '{:.1f}')} | {_f(e2e.get('p50'))} | {_f(e2e.get('p99'))} "
                       f"| {_f(pl.get('dropped_frames'), '{}')} | {_f(pl.get('late_frames'), '{}')} | "
                       + " | ".join(_f((stages.get(s) or {}).get("mean")) for s in STAGES)
                       + f" | {_f(pw.get('total_w'))} | {_f(pw.get('energy_mj_per_inference'))} "
                         f"| {_f(pw.get('max_temp_c'), '{:.1f}')} |", 3))
        out.append("")
    if notes:
        out += ["## Notes", ""] + [f"{i}. {t}" for i, t in enumerate(notes, 1)] + [""]
    n = {s: sum(r["status"] == s for r in rows) for s in ("ok", "skipped", "failed")}
    out.append(f"{len(rows)} rows: {n['ok']} ok, {n['skipped']} skipped, {n['failed']} failed.")
    return "\n".join(out) + "\n"


def write_markdown(report: dict, path: str | Path) -> Path:
    atomic_write_text(path, markdown(report))
    return Path(path)


def write_all(report: dict, out_dir: str | Path, stem: str = "bench", plots: bool = True) -> dict[str, Path]:
    """JSON + CSV + Markdown (+ PNG plots) into ``out_dir``; returns {format: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(report, out_dir / f"{stem}.json"),
             "csv": write_csv(report, out_dir / f"{stem}.csv"),
             "md": write_markdown(report, out_dir / f"{stem}.md")}
    if plots:
        from .plots import plot_latency_accuracy, plot_pipeline_stages

        paths["latency_accuracy_png"] = plot_latency_accuracy(report, out_dir / f"{stem}_latency_accuracy.png")
        paths["pipeline_stages_png"] = plot_pipeline_stages(report, out_dir / f"{stem}_pipeline_stages.png")
    return paths


def load_report(path: str | Path) -> dict:
    from .schema import ReportError

    path = Path(path)
    if not path.is_file():
        raise ReportError(f"bench report not found: {path}; pass the JSON written by a previous edgepose-bench run")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); pass the .json report, not the .csv/.md") from None
    return validate_report(doc, source=str(path))


def _boxes_note(acc_set: dict | None) -> str:
    """", detector boxes" for a set cropped at the deployment detector's boxes (older reports: nothing)."""
    return ", detector boxes" if (acc_set or {}).get("boxes") == "detector" else ""
