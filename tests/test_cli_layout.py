"""Issue 15 item 3: no `python -m` script inside a library package; every run is a subcommand.

Library modules keep functions; their argument parsing lives in edgepose/cli/ (one module per
command) and developer helpers in tools/ (outside the package).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.cli import models as cli_models
from edgepose.cli.main import BENCH_COMMANDS, command_help, main

REPO = Path(__file__).resolve().parents[1]
#: the top-level folders installed as (sub)packages of edgepose (setup.py ROOTS)
PACKAGE_ROOTS = ("edgepose", "quantize", "pipelines", "benchmarks", "jetson")
#: the CLI's own entry (`python -m edgepose.cli.main`, as torchrun runs it)
ALLOWED = {"edgepose/cli/main.py"}
MAIN_GUARD = re.compile(r"""^\s*if\s+__name__\s*==\s*['"]__main__['"]\s*:""", re.MULTILINE)


def script_modules(root: Path = REPO) -> list[str]:
    """Package modules (relative paths) that run as scripts."""
    found = []
    for top in PACKAGE_ROOTS:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel not in ALLOWED and MAIN_GUARD.search(path.read_text(encoding="utf-8")):
                found.append(rel)
    return found


def test_no_library_module_is_a_script():
    assert script_modules() == [], "move the argument parsing to edgepose/cli/ (or the helper to tools/)"


def test_the_check_finds_a_script(tmp_path):
    """The scan above can fail: a planted guard in a package folder is reported."""
    for top in PACKAGE_ROOTS:
        (tmp_path / top).mkdir()
    (tmp_path / "quantize" / "x.py").write_text("def f():\n    pass\n\n\nif __name__ == '__main__':\n    f()\n")
    (tmp_path / "jetson" / "y.py").write_text('x = "if __name__ == \\"__main__\\":"\n')  # inside a string: not a guard
    assert script_modules(tmp_path) == ["quantize/x.py"]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(BENCH_COMMANDS))
def test_bench_subcommand_help(name, capsys):
    out = _help(["bench", name, "--help"], capsys)
    assert out.startswith(f"usage: edgepose bench {name}")
    assert command_help(BENCH_COMMANDS[name]) and "\n" not in command_help(BENCH_COMMANDS[name])


def test_bench_help_lists_the_subcommands(capsys):
    out = _help(["bench", "--help"], capsys)
    for name, module in BENCH_COMMANDS.items():
        assert f"  {name:<17} {command_help(module)}" in out


@pytest.mark.parametrize("action", sorted(cli_models.ACTIONS))
def test_models_subcommand_help(action, capsys):
    assert _help(["models", action, "--help"], capsys).startswith(f"usage: edgepose models {action}")


@pytest.mark.parametrize("what", ["", "throughput", "fit-vs-labels", "teacher-yaw", "fixtures", "sheet"])
def test_synth_profile_eval_help(what, capsys):
    argv = ["synth", "profile-eval", *([what] if what else []), "--help"]
    assert _help(argv, capsys).startswith("usage: edgepose synth profile-eval")


def test_edgepose_bench_entry_point_dispatches_subcommands():
    """`edgepose-bench NAME` (the console script) reaches the subcommand, with its own prog."""
    code = "import sys; from edgepose.cli.main import bench_main; sys.argv = ['edgepose-bench', 'soak', '--help']; bench_main()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("usage: edgepose-bench soak")


def test_a_bad_bench_subcommand_input_is_one_line(tmp_path, capsys):
    assert main(["bench", "soak", "--frames", "10", "--warmup", "20"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --frames must exceed --warmup"


@pytest.mark.parametrize("tool", ["show_axes.py", "bench_loading.py"])
def test_tools_run_from_a_checkout(tool):
    out = subprocess.run([sys.executable, str(REPO / "tools" / tool), "--help"], capture_output=True, text=True,
                         cwd=REPO / "tools")
    assert out.returncode == 0 and out.stdout.startswith(f"usage: tools/{tool}")


def test_runtime_profile_and_show_axes_do_not_import_the_cli():
    code = ("import sys, edgepose.runtime.profile, edgepose.data.show_axes; "
            "print(sorted(m for m in sys.modules if m.startswith('edgepose.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
