"""Check the import-layering contract (.importlinter; docs/architecture.md) with import-linter.

``python scripts/lint_imports.py`` exits 0 when every contract holds, 1 when one is broken (the
report names the contract and the import chain).  scripts/test.sh runs it before pytest.

Why not plain ``lint-imports``: setup.py maps the top-level folders quantize/, pipelines/,
benchmarks/ and jetson/ onto ``edgepose.quantize`` etc., and grimp (import-linter's graph
builder) finds a package's modules by walking the one folder it was imported from, so in a
source checkout it would miss those four subpackages.  This script stages a tree with the
installed layout -- real folders, files symlinked to the checkout -- and points lint-imports at
it.  The folder map is read from setup.py's ``ROOTS`` (its one home).
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def package_roots(repo: Path) -> dict[str, str]:
    """setup.py's ``ROOTS`` (package name -> folder), read without running setup()."""
    tree = ast.parse((repo / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ROOTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("error: setup.py has no ROOTS mapping; fix scripts/lint_imports.py to match")


def stage(repo: Path, dest: Path) -> Path:
    """Build ``dest/edgepose/...`` with the installed package layout; returns ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.onnx", "*.pt", "*.engine")
    # Parents before children: "edgepose" first, then "edgepose.quantize" inside it.
    for name, folder in sorted(package_roots(repo).items(), key=lambda kv: kv[0].count(".")):
        target = dest.joinpath(*name.split("."))
        shutil.copytree(repo / folder, target, copy_function=os.symlink, ignore=ignore,
                        dirs_exist_ok=True)
    return dest


def lint(staged: Path, config: Path) -> subprocess.CompletedProcess:
    """Run lint-imports on a staged tree (a fresh process, so ``edgepose`` resolves to it)."""
    env = dict(os.environ, PYTHONPATH=str(staged))
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())", str(config), "--no-cache"],
        cwd=staged, env=env, text=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout to check (default: this one)")
    args = ap.parse_args(argv)
    try:
        import importlinter  # noqa: F401
    except ImportError:
        print("error: import-linter is not installed; run `pip install -e .[dev]` (or scripts/setup.sh)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edgepose-lint-") as tmp:
        res = lint(stage(args.repo, Path(tmp)), args.repo / ".importlinter")
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
