"""The CLI's one-line help lives once (each command module's HELP); `edgepose --help` lists it."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from edgepose.cli.main import COMMANDS, command_help


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listing_reads_the_modules_help(name):
    text = command_help(COMMANDS[name])
    assert text and "\n" not in text
    assert text == importlib.import_module(COMMANDS[name]).HELP


def test_top_level_help_imports_no_command_module():
    code = ("import sys; from edgepose.cli.main import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('edgepose.cli.') and m != 'edgepose.cli.main'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")
    for name in COMMANDS:
        assert f"  {name:<10} {command_help(COMMANDS[name])}" in out
