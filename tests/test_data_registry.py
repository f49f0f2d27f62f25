"""Dataset formats: one registry (name -> factory, list_formats), lazy entries without side effects."""
from __future__ import annotations

import subprocess
import sys

import pytest

from edgepose.data import get_format, list_formats
from edgepose.errors import DataError


def test_synth_format_needs_no_import_for_side_effect():
    code = ("import sys; from edgepose.data import get_format; f = get_format('synth'); "
            "print(f.__module__, 'edgepose.methods' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["edgepose.synth.reader", "False"]


def test_list_and_unknown_format():
    assert {"aflw2000", "300wlp", "biwi", "folder", "video", "synth"} <= set(list_formats())
    assert list_formats() == sorted(list_formats())
    with pytest.raises(DataError, match="unknown dataset format 'nope'.*synth"):
        get_format("nope")
