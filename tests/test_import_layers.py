"""The import-layering contract (.importlinter, scripts/lint_imports.py) holds, and it can fail."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e .[dev])")

REPO = Path(__file__).resolve().parents[1]


def _lint_module():
    spec = importlib.util.spec_from_file_location("lint_imports", REPO / "scripts" / "lint_imports.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tree_keeps_every_contract(tmp_path):
    li = _lint_module()
    res = li.lint(li.stage(REPO, tmp_path), REPO / ".importlinter")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout
    # the staged tree has the installed layout: the mapped top-level folders are in the graph
    assert (tmp_path / "edgepose" / "quantize" / "ptq.py").exists()


@pytest.mark.parametrize("path, source, contract", [
    ("edgepose/dms/_probe.py", "from edgepose.runtime import backend\n", "dms never imports runtime or pipelines"),
    ("edgepose/data/_probe.py", "import edgepose.cli.main\n", "cli is imported by nobody"),
    ("edgepose/models/_probe.py", "from edgepose.train import trainer\n", "Offline chain flows one way"),
    ("edgepose/errors.py", "from edgepose import metadata\n", "geometry, preprocess and errors import nothing"),
    ("edgepose/runtime/_probe.py", "from edgepose.distill import trainer\n", "the deployment side"),
    ("edgepose/benchmarks/plots.py", "from edgepose.benchmarks.report import markdown\n", "no import circles"),
    ("edgepose/models/_registry.py", "from edgepose.models.backbones import resnet\n", "the model registry imports no backbone"),
])
def test_a_new_violation_breaks_its_contract(tmp_path, path, source, contract):
    li = _lint_module()
    staged = li.stage(REPO, tmp_path)
    target = staged / path
    original = target.read_text() if target.exists() else ""
    target.unlink(missing_ok=True)  # a symlink into the checkout: replace it, never write through it
    target.write_text(original + source)
    res = li.lint(staged, REPO / ".importlinter")
    assert res.returncode != 0
    broken = res.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, res.stdout
    # the checkout itself is untouched
    assert not (REPO / path).exists() or source not in (REPO / path).read_text()
    shutil.rmtree(staged)
