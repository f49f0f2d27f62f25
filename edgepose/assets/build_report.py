"""What the student is shown: histograms of the training labels (pitch, yaw, roll) per data part.

A student under-reads upward pitch when almost none of its real faces look up; this report makes such a
gap visible before the training starts (``out_dir/label-histogram.json`` and ``.png``)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("edgepose.assets.build")

EDGES = np.arange(-180, 181, 15)  # 15 deg bins over the whole circle (full-range synthetic heads included)
ANGLES = ("pitch", "yaw", "roll")


def label_histogram(parts: dict[str, np.ndarray]) -> dict:
    """``{part: (N, 3, 3) rotations}`` -> ``{"edges_deg": [...], part: {angle: counts}}`` (Euler angles as
    :func:`edgepose.geometry.matrix_to_euler` decodes them)."""
    from edgepose.geometry import matrix_to_euler

    out: dict = {"edges_deg": EDGES.tolist()}
    for name, R in parts.items():
        e = matrix_to_euler(np.asarray(R, np.float64))
        out[name] = {a: np.histogram(e[:, k], EDGES)[0].tolist() for k, a in enumerate(ANGLES)}
        out[name]["n"] = int(len(e))
    return out


def coverage_line(hist: dict, part: str) -> str:
    """One log line: the share of a part's labels beyond +-15 and +-30 deg per angle."""
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    bits = []
    for a in ANGLES:
        c = np.asarray(hist[part][a], np.float64)
        n = max(1.0, c.sum())
        bits.append(f"{a} <-30: {c[centres < -30].sum() / n:.0%}, >+30: {c[centres > 30].sum() / n:.0%}")
    return f"{part} labels ({hist[part]['n']}): " + "; ".join(bits)


def write_label_report(out: Path, parts: dict[str, np.ndarray]) -> dict:
    hist = label_histogram(parts)
    (out / "label-histogram.json").write_text(json.dumps(hist, indent=1) + "\n")
    for part in parts:
        log.info(coverage_line(hist, part))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the bench extra draws the figure; the JSON is always written
        return hist
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=False)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    for ax, a in zip(axes, ANGLES):
        for part in parts:
            c = np.asarray(hist[part][a], np.float64)
            ax.step(centres, c / max(1.0, c.sum()), where="mid", label=part)
        ax.set_title(a)
        ax.set_xlabel("degrees")
        ax.set_xlim(-180, 180)
    axes[0].set_ylabel("share of the part")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "label-histogram.png", dpi=80)
    plt.close(fig)
    return hist
