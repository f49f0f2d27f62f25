"""Generate docs/figures/conventions.png: a synthetic wireframe head at frontal, +yaw, +pitch
and +roll, projected with edgepose.geometry (no dataset images are used).

    .venv/bin/python docs/figures/make_conventions_figure.py
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from edgepose import geometry  # noqa: E402

OUT = Path(__file__).with_name("conventions.png")


def head_lines() -> list[tuple[np.ndarray, str, float, np.ndarray | None]]:
    """Polylines of a head in model coordinates (x = subject's left, y up, z out of the face),
    each with the outward normal used to hide it when it faces away (None: per-point normals)."""
    lines = []
    t = np.linspace(0, 2 * np.pi, 80)
    a, b, c = 0.8, 1.0, 0.9  # ellipsoid half-axes
    for lat in np.linspace(-0.8, 0.8, 7):  # horizontal rings
        r = np.sqrt(1 - lat ** 2)
        lines.append((np.stack([a * r * np.cos(t), b * lat * np.ones_like(t), c * r * np.sin(t)], 1), "0.6", 0.8, None))
    for lon in np.linspace(0, np.pi, 7, endpoint=False):  # meridians
        lines.append((np.stack([a * np.sin(t) * np.cos(lon), b * np.cos(t), c * np.sin(t) * np.sin(lon)], 1), "0.6", 0.8, None))
    nose = np.array([[0, 0.15, 0.88], [0, -0.25, 1.25], [0.12, -0.3, 0.95], [-0.12, -0.3, 0.95], [0, -0.25, 1.25]])
    lines.append((nose, "k", 2.0, np.array([0, 0, 1.0])))
    for sx in (-1, 1):  # eyes
        e = np.stack([sx * 0.3 + 0.12 * np.cos(t), 0.2 + 0.06 * np.sin(t), 0.75 + 0 * t], 1)
        lines.append((e, "k", 1.5, np.array([0, 0, 1.0])))
        ear = np.stack([sx * 0.82 + 0 * t, 0.05 + 0.2 * np.sin(t), 0.1 * np.cos(t)], 1)
        lines.append((ear, "k", 1.5, np.array([sx, 0, 0.3])))
    mouth = np.stack([np.linspace(-0.25, 0.25, 20), -0.5 - 0.05 * np.cos(np.linspace(-1.5, 1.5, 20)),
                      0.72 + 0 * np.linspace(0, 1, 20)], 1)
    lines.append((mouth, "k", 1.5, np.array([0, 0, 1.0])))
    return lines


def draw(ax, pyr, title):
    R = geometry.euler_to_matrix(pyr)
    R3 = geometry.camera_frame(R)  # model -> camera (z toward the viewer)
    for pts, colour, lw, normal in head_lines():
        uv = geometry.project_points(R, pts)
        if normal is None:  # points on the ellipsoid: hide the back half
            uv[(pts @ R3.T)[:, 2] < 0] = np.nan
        elif (R3 @ normal)[2] < 0:
            continue
        ax.plot(uv[:, 0], uv[:, 1], color=colour, lw=lw)
    ends = geometry.project_points(R, 1.6 * np.eye(3))
    for end, colour, name in zip(ends, ("tab:red", "tab:green", "tab:blue"), ("x", "y", "z (nose)")):
        ax.annotate("", xy=end, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color=colour, lw=2.5))
        ax.text(*(end * 1.08), name, color=colour, fontsize=9, ha="center", va="center")
    ax.set_xlim(-1.9, 1.9)
    ax.set_ylim(1.9, -1.9)  # image coordinates: v grows downward
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)


def main() -> Path:
    panels = [((0, 0, 0), "frontal (0, 0, 0)"),
              ((0, 30, 0), "+yaw 30: nose to IMAGE-LEFT"),
              ((25, 0, 0), "+pitch 25: looking UP"),
              ((0, 0, 25), "+roll 25: top to IMAGE-RIGHT\n(clockwise on screen)")]
    fig, axes = plt.subplots(1, 4, figsize=(13, 4.2))
    for ax, (pyr, title) in zip(axes, panels):
        draw(ax, np.array(pyr, float), title)
    fig.suptitle("edgepose convention: R = Rz(roll) Ry(yaw) Rx(pitch); arrays are (pitch, yaw, roll) in degrees; "
                 "view = the camera image", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(OUT, dpi=110)
    return OUT


if __name__ == "__main__":
    print(main())
