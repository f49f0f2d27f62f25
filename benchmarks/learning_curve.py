"""Learning curve of a teacher-table row: error against training budget, and the budget a target needs.

The [teachers] issue asks, where a trained teacher misses its target, "what budget would be needed, measured by a
learning curve". The table's rows are trained at several budgets (``--set epochs=N``, each into its own run folder),
and every row's ``table.json`` keeps the per-face errors of each claim set on the *same* faces. So:

* each (row, run folder) is one point: iterations = epochs x iterations per epoch, error = the mean over faces;
* the curve is a power law ``err(n) = b * n ** -c`` fitted by least squares in log-log space (a saturating form
  ``a + b * n ** -c`` has three parameters, as many as the budgets a CPU table has, so it would fit any three
  points exactly and say nothing);
* the budget a target needs is where the fitted curve reaches it; its interval comes from a bootstrap over faces
  (the same resampled faces for every point, since the points share them), so it is as sure as the faces make it
  and no surer -- a power law extrapolated past the measured budgets is an estimate, and the report says how far
  it extrapolates.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepose.errors import UserError

from .teacher_claims import paired_difference

__all__ = ["CurvePoint", "PowerLaw", "fit_power_law", "curve_points", "budget_for", "learning_curve_report",
           "plot_learning_curve"]


@dataclass(frozen=True)
class CurvePoint:
    """One trained row at one budget: its per-face errors on one claim set's view."""
    iterations: int
    errors: np.ndarray        # per face, the same faces (same order) for every point of a curve
    folder: str               # the run folder it came from (seeds at one budget are separate points)

    @property
    def mean(self) -> float:
        return float(np.mean(self.errors))


@dataclass(frozen=True)
class PowerLaw:
    """``err(n) = b * n ** -c``."""
    b: float
    c: float

    def __call__(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.b * np.asarray(n, float) ** -self.c

    def iterations_to(self, target: float) -> float:
        """Iterations where the curve reaches ``target``; inf when it never does (c <= 0: the error is not falling)."""
        if self.c <= 0 or target <= 0:
            return math.inf
        log_n = math.log(self.b / target) / self.c
        return math.exp(log_n) if log_n < 700 else math.inf  # past exp's range: never, for any practical budget


def fit_power_law(iterations: np.ndarray, errors: np.ndarray) -> PowerLaw:
    """Least squares of ``log err = log b - c log n`` (needs two budgets or more, errors > 0)."""
    n = np.asarray(iterations, float)
    e = np.asarray(errors, float)
    if len(np.unique(n)) < 2:
        raise UserError("a learning curve needs rows trained at two budgets or more: train the row again with "
                        "--set epochs=N into another run folder and pass both folders")
    if np.any(e <= 0) or np.any(n <= 0):
        raise UserError("a learning curve needs positive errors and budgets")
    slope, intercept = np.polyfit(np.log(n), np.log(e), 1)
    return PowerLaw(b=float(math.exp(intercept)), c=float(-slope))


def curve_points(run_dirs: list[Path], row: str, claim_set: str = "real-val", view: str = "original") -> list[CurvePoint]:
    """The row's points from each run folder's ``<row>/table.json`` (its budget and per-face errors)."""
    pts = []
    for d in run_dirs:
        p = Path(d) / row / "table.json"
        if not p.is_file():
            raise UserError(f"--curve {d}: no finished row {row!r} ({p} is missing); pass run folders where it ran")
        res = json.loads(p.read_text())
        b = res.get("budget") or {}
        errors = ((res.get("claims") or {}).get(claim_set) or {}).get(view, {}).get("errors")
        if not b.get("epochs") or not b.get("iters_per_epoch") or errors is None:
            raise UserError(f"{p}: no budget or no per-face {claim_set}/{view} errors; re-score it with "
                            f"edgepose-bench methods --suite real --eval-only")
        pts.append(CurvePoint(int(b["epochs"]) * int(b["iters_per_epoch"]), np.asarray(errors, float), str(d)))
    sizes = {len(p.errors) for p in pts}
    if len(sizes) > 1:
        raise UserError(f"--curve: the run folders scored {claim_set} on different faces ({sorted(sizes)} faces); "
                        f"a curve needs the same faces at every budget (the same --build-dir)")
    return sorted(pts, key=lambda p: p.iterations)


def budget_for(points: list[CurvePoint], target: float, n_boot: int = 2000, seed: int = 0) -> dict:
    """The fitted curve, the iterations it needs to reach ``target`` and a bootstrap interval over faces."""
    its = np.array([p.iterations for p in points], float)
    fit = fit_power_law(its, np.array([p.mean for p in points]))
    errs = np.stack([p.errors for p in points])  # (points, faces)
    rng = np.random.default_rng(seed)
    need = []
    for _ in range(n_boot):
        idx = rng.integers(0, errs.shape[1], errs.shape[1])
        need.append(fit_power_law(its, errs[:, idx].mean(axis=1)).iterations_to(target))
    lo, hi = np.percentile(need, [2.5, 97.5])
    n_star = fit.iterations_to(target)
    return {"b": fit.b, "c": fit.c, "target": target, "iterations": n_star, "iterations_lo": float(lo),
            "iterations_hi": float(hi), "largest_measured": int(its.max()), "last_step": last_step(points, n_boot, seed),
            "extrapolation": n_star / its.max() if math.isfinite(n_star) else math.inf,
            "points": [{"iterations": p.iterations, "mean": p.mean, "folder": p.folder} for p in points]}


def last_step(points: list[CurvePoint], n_boot: int = 2000, seed: int = 0) -> dict:
    """The measured change between the two largest budgets (points at one budget, e.g. seeds, averaged), with a
    paired bootstrap interval over faces: the model-free answer to "is it still falling", which a power law fitted
    through a steep early point can hide."""
    budgets = sorted({p.iterations for p in points})
    hi_n, lo_n = budgets[-1], budgets[-2]
    a = np.mean([p.errors for p in points if p.iterations == hi_n], axis=0)
    b = np.mean([p.errors for p in points if p.iterations == lo_n], axis=0)
    diff = paired_difference(a, b, n_boot, seed)  # the teacher table's paired bootstrap over the same faces
    return {"from": lo_n, "to": hi_n, "change": diff["mean"], "lo": diff["lo"], "hi": diff["hi"],
            "relative": diff["mean"] / float(b.mean())}


def _fmt_iters(n: float) -> str:
    return "never (the error is not falling)" if not math.isfinite(n) else f"{n:,.0f}"


def learning_curve_report(run_dirs: list[Path], row: str, target: float, claim_set: str = "real-val",
                          view: str = "original") -> tuple[str, dict]:
    """Markdown (points, fit, budget to the target) and the numbers behind it."""
    pts = curve_points(run_dirs, row, claim_set, view)
    res = budget_for(pts, target)
    lines = [f"Learning curve of `{row}` on {claim_set} {view} (geodesic, deg; mean over {len(pts[0].errors)} faces):", "",
             "| iterations | mean | run folder |", "|---:|---:|---|"]
    lines += [f"| {p['iterations']:,} | {p['mean']:.2f} | {p['folder']} |" for p in res["points"]]
    lines += ["", f"Fit: err = {res['b']:.2f} x n^-{res['c']:.3f}. To reach {target:.2f} deg: "
              f"**{_fmt_iters(res['iterations'])} iterations** [bootstrap 95 % over faces: "
              f"{_fmt_iters(res['iterations_lo'])} - {_fmt_iters(res['iterations_hi'])}], "
              + ("" if not math.isfinite(res["extrapolation"]) else
                 f"{res['extrapolation']:.1f} x the largest measured budget ({res['largest_measured']:,})"
                 + (" -- an extrapolation of a power law, an estimate rather than a measurement." if res["extrapolation"] > 1
                    else ": inside the measured range."))]
    s = res["last_step"]
    lines += ["", f"Last step, measured: {s['from']:,} -> {s['to']:,} iterations changed the mean by {s['change']:+.2f} deg "
              f"[{s['lo']:+.2f}, {s['hi']:+.2f}] ({100 * s['relative']:+.1f} %; points at one budget averaged)."]
    return "\n".join(lines) + "\n", res


def plot_learning_curve(res: dict, path: str | Path, title: str) -> Path:
    """Points, the fitted curve out to the target's budget, and the target line (log-log)."""
    from .plots import _pyplot, _save

    plt = _pyplot()
    its = [p["iterations"] for p in res["points"]]
    top = max(its) * 1.5
    if math.isfinite(res["iterations"]):
        top = max(top, res["iterations_hi"] if math.isfinite(res["iterations_hi"]) else res["iterations"] * 1.5)
    xs = np.geomspace(min(its) * 0.8, top, 100)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(its, [p["mean"] for p in res["points"]], "o", label="trained rows (each seed a point)")
    ax.plot(xs, PowerLaw(res["b"], res["c"])(xs), "-", label=f"fit: {res['b']:.1f} n^-{res['c']:.2f}")
    ax.axhline(res["target"], color="grey", ls="--", label=f"target {res['target']:.2f}")
    if math.isfinite(res["iterations"]):
        ax.axvspan(res["iterations_lo"], min(res["iterations_hi"], top), color="tab:orange", alpha=0.15,
                   label="budget to the target, 95 % interval")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training iterations (batch 32)")
    ax.set_ylabel("geodesic error (deg)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)
