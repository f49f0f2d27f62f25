"""edgepose.registry.Registry: the one name -> factory pattern behind models, importers, methods,
dataset formats, detectors and bench backends."""
from __future__ import annotations

import sys
import textwrap

import pytest

from edgepose.config import ConfigError
from edgepose.errors import DataError, ModelError, UserError
from edgepose.registry import Registry


def test_unknown_name_is_one_line_with_the_known_names():
    reg: Registry = Registry("widget", error=DataError, hint="(or give module:Class)")
    reg.add("b", len)
    reg.add("a", abs)
    with pytest.raises(DataError) as err:
        reg.get("c")
    assert str(err.value) == "unknown widget 'c'; available: a, b (or give module:Class)"
    assert "\n" not in str(err.value)
    assert reg.names() == ["a", "b"] and reg.list("a*") == ["a"] and "a" in reg and len(reg) == 2


def test_duplicate_registration_is_refused_but_the_same_object_again_is_not():
    reg: Registry = Registry("widget")

    @reg.register("w", colour="red")
    def w():  # pragma: no cover - never called
        pass

    reg.add("w", w)  # the same object again (a module imported twice): fine
    with pytest.raises(ValueError, match="widget 'w' registered twice"):
        reg.add("w", abs)
    assert reg.get("w") is w and reg.info("w") == {"colour": "red"}
    reg.add("w", abs, replace=True)  # an explicit override
    assert reg.get("w") is abs


def test_hidden_entries_and_registration_order():
    reg: Registry = Registry("model", error=ModelError, hide="imported_only", sort=False)
    reg.add("z", abs)
    reg.add("graph", len, imported_only=True)
    reg.add("a", min)
    assert reg.names() == ["z", "a"]
    assert reg.names(include_hidden=True) == ["z", "graph", "a"]
    assert reg.get("graph") is len  # hidden from listings, still buildable
    with pytest.raises(ModelError, match=r"available: z, a$"):
        reg.get("nope")


@pytest.fixture
def plugin_pkg(tmp_path, monkeypatch):
    """A real importable package whose modules register into ``REG`` when imported."""
    pkg = tmp_path / "regplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "table.py").write_text(textwrap.dedent("""
        from edgepose.registry import Registry
        REG = Registry("plugin", modules=["regplug.eager", "regplug.absent"],
                       module_of=lambda name: f"regplug.{name}")
        LAZY = Registry("thing")
        LAZY.add("counter", "collections:Counter")
    """))
    (pkg / "eager.py").write_text("from regplug.table import REG\nREG.add('eager', object)\n")
    (pkg / "onmiss.py").write_text("from regplug.table import REG\nREG.add('onmiss', dict)\n")
    (pkg / "broken.py").write_text("import regplug_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [m for m in sys.modules if m == "regplug" or m.startswith("regplug.")]:
        del sys.modules[name]


def test_lazy_imports(plugin_pkg):
    from regplug.table import LAZY, REG

    assert "regplug.eager" not in sys.modules  # nothing imported until the first use
    assert REG.names() == ["eager"]  # the listed modules were imported; the absent one skipped
    assert "regplug.onmiss" not in sys.modules
    assert REG.get("onmiss") is dict  # a miss imports the module that may define the name
    assert REG.names() == ["eager", "onmiss"]
    with pytest.raises(UserError, match="unknown plugin 'nothere'; available: eager, onmiss"):
        REG.get("nothere")  # no module of that name: the one-line error, not ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match="regplug_no_such_dependency"):
        REG.get("broken")  # a module that exists but fails to import is a real bug: not hidden
    assert "collections" in sys.modules and LAZY.get("counter").__name__ == "Counter"  # "module:attr"


def test_the_six_registries_share_the_error_style():
    from edgepose.benchmarks.backends import availability
    from edgepose.data import get_format
    from edgepose.importers import get_importer
    from edgepose.models.registry import create_backbone
    from edgepose.runtime import create_detector
    from edgepose.methods.method import get_method

    for call, error, kind in [(lambda: create_backbone("nope"), ModelError, "model"),
                              (lambda: get_importer("nope"), ModelError, "teacher"),
                              (lambda: get_method("nope"), ConfigError, "training method"),
                              (lambda: get_format("nope"), DataError, "dataset format"),
                              (lambda: create_detector("nope", model_path=__file__), ModelError, "face detector")]:
        with pytest.raises(error, match=rf"^unknown {kind} 'nope'; available: \w"):
            call()
    assert availability("nope").startswith("unknown backend 'nope'; available: ort-cpu")
