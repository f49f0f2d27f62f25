"""PNG plots of a bench report (matplotlib, Agg backend: no display needed).

* latency vs accuracy: p50 latency at batch 1 against MAE on the accuracy set, one marker per
  backend, the Pareto front (nothing else is both faster and more accurate) joined and ringed.
  Without accuracy (untrained weights, no eval set) the plot shows p50 with p90/p99 whiskers.
* pipeline stages: stacked horizontal bars of the mean per-frame time per stage.
"""
from __future__ import annotations

from pathlib import Path

from edgepose.errors import require

from .schema import STAGES

__all__ = ["pareto_front", "plot_latency_accuracy", "plot_pipeline_stages"]

_MARKERS = {"torch": "o", "ort-cpu": "s", "ort-cuda": "^", "ort-trt": "D", "tensorrt": "*"}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated by another (lower x and lower y are better), by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


def _pyplot():
    mpl = require("matplotlib", "bench", "bench plots")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    from edgepose.metadata import atomic_write_bytes
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_latency_accuracy(report: dict, path: str | Path) -> Path:
    plt = _pyplot()
    rows = [r for r in report["rows"] if r["kind"] == "model" and r["status"] == "ok"
            and (r.get("latency_ms") or {}).get("p50") is not None]
    b1 = [r for r in rows if r["batch"] == 1] or rows
    with_acc = [r for r in b1 if (r.get("accuracy") or {}).get("mae") is not None]
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    title = f"{(report.get('suite') or {}).get('name', 'bench')} on {(report.get('platform') or {}).get('cpu', '?')}"
    if with_acc:
        pts = [(r["latency_ms"]["p50"], r["accuracy"]["mae"]) for r in with_acc]
        names = sorted({r["name"] for r in with_acc})
        colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
        for r, (x, y) in zip(with_acc, pts):
            ax.scatter(x, y, s=70, marker=_MARKERS.get(r["backend"], "o"), color=colors[r["name"]], zorder=3,
                       edgecolor="black", linewidth=0.5)
            ax.annotate(f"{r['name']} {r['backend']} {r['precision']}", (x, y), textcoords="offset points",
                        xytext=(6, 4), fontsize=7)
        front = pareto_front(pts)
        fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
        ax.step(fx, fy, where="post", color="crimson", linewidth=1.5, label="Pareto front", zorder=2)
        ax.scatter(fx, fy, s=220, facecolors="none", edgecolors="crimson", linewidth=1.5, zorder=4)
        for n in names:
            ax.scatter([], [], color=colors[n], label=n)
        for b in sorted({r["backend"] for r in with_acc}):
            ax.scatter([], [], marker=_MARKERS.get(b, "o"), color="gray", label=b)
        ax.set_xscale("log")
        from matplotlib.ticker import LogLocator, ScalarFormatter

        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        no_acc = sorted({r["name"] for r in b1 if r not in with_acc})
        if no_acc:
            ax.text(0.0, -0.16, f"not plotted (no accuracy: untrained weights or no eval set): {', '.join(no_acc)}",
                    transform=ax.transAxes, fontsize=7, color="dimgray")
        ax.set_xlabel("p50 latency per call, ms (batch 1, log scale)")
        ax.set_ylabel(f"MAE, degrees ({with_acc[0]['accuracy'].get('dataset', 'eval set')})")
        ax.legend(fontsize=7, loc="best")
        ax.set_title(f"Latency vs accuracy - {title}", fontsize=10)
    else:
        labels = [f"{r['name']} {r['backend']} {r['precision']} b{r['batch']}" for r in rows]
        p50 = [r["latency_ms"]["p50"] for r in rows]
        lo = [0.0] * len(rows)
        hi = [max(0.0, r["latency_ms"].get("p99", r["latency_ms"]["p50"]) - r["latency_ms"]["p50"]) for r in rows]
        y = list(range(len(rows)))
        ax.barh(y, p50, xerr=[lo, hi], color="steelblue", capsize=3)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("p50 latency per call, ms (whisker: p99)")
        ax.set_title(f"Latency (no accuracy rows: untrained weights or no eval set) - {title}", fontsize=9)
        if not rows:
            ax.text(0.5, 0.5, "no successful model rows", ha="center", va="center", transform=ax.transAxes)
    ax.grid(True, which="both", alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_pipeline_stages(report: dict, path: str | Path) -> Path:
    plt = _pyplot()
    rows = [r for r in report["rows"] if r["kind"] == "pipeline" and r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.6 * max(1, len(rows))))
    if rows:
        labels = [f"{r['name']} {r['backend']} {r['precision']}" for r in rows]
        left = [0.0] * len(rows)
        cmap = plt.cm.tab10
        for k, stage in enumerate(STAGES):
            vals = [((r.get("pipeline") or {}).get("stages_ms", {}).get(stage) or {}).get("mean", 0.0) or 0.0
                    for r in rows]
            if not any(vals):
                continue
            ax.barh(labels, vals, left=left, color=cmap(k), label=stage, edgecolor="white", linewidth=0.5)
            left = [a + b for a, b in zip(left, vals)]
        for i, r in enumerate(rows):
            e2e = (r.get("pipeline") or {}).get("e2e_ms") or {}
            if e2e.get("mean") is not None:
                ax.plot([e2e["mean"]], [i], marker="|", color="black", markersize=18)
        ax.invert_yaxis()
        ax.set_xlabel("mean ms per frame (stacked stages; | = measured frame-to-output mean)")
        ax.legend(ncol=len(STAGES), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(rows) < 3 else -0.15))
    else:
        ax.text(0.5, 0.5, "no successful pipeline rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("Pipeline per-stage latency", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out
