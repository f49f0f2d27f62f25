"""One registry pattern for every "name -> thing" table: models, importers, training methods,
dataset formats, face detectors and benchmark backends.

A :class:`Registry` maps names to factories (functions or classes) with optional per-entry
``info`` (a backbone's default cfg, a detector's thresholds)::

    DETECTORS = Registry("face detector", error=ModelError)

    @DETECTORS.register("yunet", defaults={...})
    def _yunet(path, **kw): ...

    DETECTORS.get("yunet")        # the factory
    DETECTORS.get("nope")         # ModelError: unknown face detector 'nope'; available: yunet, ...
    DETECTORS.names("y*")         # ['yunet']

Why one class: a bad name gives the same one-line error everywhere (the known names listed, so the
user can fix it without reading code), a second registration under a taken name is refused
everywhere (two modules silently fighting over a name is a bug that shows up far away), and the
lazy imports that keep ``import edgepose`` cheap live in one place.

Lazy entries, three kinds (each is how one of the registries already worked):

* ``modules``: modules whose import registers entries (their decorators run); imported on the
  first lookup or listing.  A module that is not there (an optional one) is skipped.
* ``module_of(name)``: the module that may define ``name``, imported on a miss only (training
  methods: ``method.name: clerf`` imports ``edgepose.methods.clerf``).
* a ``"module:attr"`` string as the entry itself: imported when ``get`` first resolves it, so a
  table can name something that lives above its layer without importing it (dataset formats).

This module imports nothing of ours but :mod:`edgepose.errors`; the registries themselves stay
in the package that owns their entries (docs/architecture.md, "Where a new piece goes").
"""
from __future__ import annotations

import fnmatch
import importlib
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar

from .errors import UserError

__all__ = ["Registry", "import_optional"]

T = TypeVar("T")


def import_optional(module: str) -> bool:
    """Import ``module``; False when the module itself (or its package) does not exist.

    An ImportError *inside* an existing module (a broken dependency) is raised: hiding it would
    turn a real bug into a confusing "unknown name" error."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        parents = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}
        if exc.name not in parents:
            raise
        return False
    return True


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(Generic[T]):
    """Name -> factory, with one-line errors that list the known names.

    ``kind`` names the entries in messages ("model", "training method"); ``error`` is the
    :class:`UserError` subclass a miss raises; ``hint`` is appended to that message (e.g.
    "(or give module:Class)"); ``hide`` is an info key whose truthy value keeps an entry out of
    :meth:`names` and the error's list (backbones only an importer can build); ``sort=False``
    lists names in registration order (the detectors' order is their order of preference).
    """

    def __init__(self, kind: str, *, error: type[UserError] = UserError, hint: str = "",
                 modules: Sequence[str] = (), module_of: Callable[[str], str] | None = None,
                 hide: str | None = None, sort: bool = True):
        self.kind = kind
        self.error = error
        self.hint = hint
        self._entries: dict[str, T | str] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._modules = tuple(modules)
        self._loaded = not self._modules
        self._module_of = module_of
        self._hide = hide
        self._sort = sort

    # -- registration ------------------------------------------------------------------------

    def add(self, name: str, obj: T | str, *, replace: bool = False, **info: Any) -> T | str:
        """Register ``obj`` (or a lazy ``"module:attr"`` string) under ``name``.

        Registering the same object again is a no-op (a module imported twice); another object
        under a taken name raises ValueError unless ``replace``."""
        old = self._entries.get(name)
        if old is not None and not replace:
            if old is obj:
                return obj  # keeps the first registration's info
            raise ValueError(f"{self.kind} {name!r} registered twice ({_label(old)} and {_label(obj)})")
        self._entries[name] = obj
        self._info[name] = dict(info)
        return obj

    def register(self, name: str | None = None, *, replace: bool = False, **info: Any) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; ``name`` defaults to the function or class name."""

        def deco(obj: T) -> T:
            self.add(name or obj.__name__, obj, replace=replace, **info)
            return obj

        return deco

    # -- lookup ------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: a registering module may look itself up while importing
            for mod in self._modules:
                import_optional(mod)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names(include_hidden=True))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def get(self, name: str) -> T:
        """The factory registered as ``name`` (a lazy entry is imported now); a miss raises
        ``self.error`` with the known names."""
        self._load()
        if name not in self._entries and self._module_of is not None:
            import_optional(self._module_of(name))
        if name not in self._entries:
            raise self.error(self.unknown(name))
        obj = self._entries[name]
        if isinstance(obj, str):
            obj = self._entries[name] = _resolve(obj)
        return obj

    __getitem__ = get

    def info(self, name: str) -> dict[str, Any]:
        """A copy of the entry's extra data (what ``register(name, **info)`` was given)."""
        self.get(name)  # the one-line error for an unknown name
        return dict(self._info[name])

    def names(self, pattern: str = "*", include_hidden: bool = False) -> list[str]:
        """Registered names matching the fnmatch ``pattern``."""
        self._load()
        out = [n for n in self._entries if fnmatch.fnmatch(n, pattern)
               and (include_hidden or not (self._hide and self._info[n].get(self._hide)))]
        return sorted(out) if self._sort else out

    list = names

    def unknown(self, name: str) -> str:
        """The one-line message for a name that is not registered."""
        known = ", ".join(self.names()) or "(none)"
        return f"unknown {self.kind} {name!r}; available: {known}" + (f" {self.hint}" if self.hint else "")

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _label(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
