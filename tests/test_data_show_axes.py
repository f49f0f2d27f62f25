"""tools/show_axes.py: draws a label's axes; clear errors for bad input."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from edgepose.data.show_axes import draw_axes
from edgepose import geometry as g


def _tool_main():
    """``main`` of tools/show_axes.py (a script outside the package, loaded from its file)."""
    path = Path(__file__).resolve().parents[1] / "tools" / "show_axes.py"
    spec = importlib.util.spec_from_file_location("show_axes_tool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_draw_axes_nose_direction():
    img = np.zeros((200, 200, 3), np.uint8)
    out = draw_axes(img, g.euler_to_matrix([0, 60, 0]), (100, 100), 80)
    blue = (out[..., 0] > 200) & (out[..., 2] < 100)  # the nose arrow
    xs = np.nonzero(blue)[1]
    assert xs.size and xs.mean() < 100  # +yaw: nose to image-left


def test_show_axes_cli(tmp_path, aflw_dir, capsys):
    main = _tool_main()
    out = tmp_path / "axes.png"
    rc = main([str(aflw_dir / "image02420.jpg"), "--mat", str(aflw_dir / "image02420.mat"), "-o", str(out)])
    assert rc == 0 and cv2.imread(str(out)).shape == (450, 450, 3)
    assert main([str(tmp_path / "missing.jpg"), "--pyr", "0", "0", "0", "-o", str(out)]) == 2
    assert "image not found" in capsys.readouterr().err
