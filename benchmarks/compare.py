"""Regression gate: compare a run with a baseline report, row by row.

Rows match on (kind, name, backend, precision, device, batch, input size).  The ratio is
``current / baseline`` of a latency statistic (p50 by default); a ratio above
``max_regression`` (e.g. 1.2 = 20 % slower) is a regression and makes ``edgepose-bench``
exit with status 1.  Rows that are ok in the baseline but not now also count as regressions.
"""
from __future__ import annotations

from dataclasses import dataclass

from .schema import row_key

__all__ = ["Comparison", "compare_reports", "format_comparison"]


@dataclass
class Comparison:
    key: tuple
    label: str
    baseline: float | None
    current: float | None
    ratio: float | None
    regression: bool
    note: str = ""


def _value(row: dict, metric: str) -> float | None:
    if row.get("status") != "ok":
        return None
    if row.get("kind") == "pipeline" and metric in ("p50", "p90", "p99", "mean"):
        return ((row.get("pipeline") or {}).get("e2e_ms") or {}).get(metric)
    return (row.get("latency_ms") or {}).get(metric)


def _label(row: dict) -> str:
    size = f"@{row.get('input_size')}" if row.get("input_size") else ""
    return f"{row.get('kind')}:{row.get('name')}{size} {row.get('backend')} {row.get('precision')} b{row.get('batch')}"


def compare_reports(current: dict, baseline: dict, max_regression: float = 1.2,
                    metric: str = "p50") -> list[Comparison]:
    if max_regression <= 0:
        raise ValueError("max_regression must be positive")
    base = {row_key(r): r for r in baseline["rows"]}
    out = []
    for row in current["rows"]:
        k = row_key(row)
        b = base.get(k)
        if b is None:
            continue
        bv, cv = _value(b, metric), _value(row, metric)
        if bv is not None and cv is None:
            out.append(Comparison(k, _label(row), bv, None, None, True,
                                  f"was ok, now {row.get('status')}: {row.get('reason', '')}"))
        elif bv is not None and cv is not None and bv > 0:
            ratio = cv / bv
            out.append(Comparison(k, _label(row), bv, cv, ratio, ratio > max_regression))
    return out


def format_comparison(comps: list[Comparison], max_regression: float, metric: str = "p50") -> str:
    if not comps:
        return "compare: no matching rows between this run and the baseline"
    lines = [f"{'row':<58} {'base ' + metric:>11} {'now ' + metric:>11} {'ratio':>7}"]
    for c in comps:
        flag = "  REGRESSION" if c.regression else ""
        lines.append(f"{c.label:<58} {c.baseline if c.baseline is not None else float('nan'):>11.3f} "
                     f"{c.current if c.current is not None else float('nan'):>11.3f} "
                     f"{c.ratio if c.ratio is not None else float('nan'):>7.2f}{flag}"
                     + (f" ({c.note})" if c.note else ""))
    n = sum(c.regression for c in comps)
    lines.append(f"{n} of {len(comps)} matching rows regressed past x{max_regression:g} ({metric})")
    return "\n".join(lines)
