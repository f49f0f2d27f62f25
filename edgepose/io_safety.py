"""Output safety: no command overwrites one of its inputs or another of its outputs, and every output
is known to be writable before anything runs.

Every command that writes files calls :func:`check_outputs` with what it reads and what it will write,
before it opens anything for writing (docs/runtime.md "Failure behaviour").  Two paths are the same
file when their real paths match (symlinks, ``..``, relative paths) or when both exist with the same
``(st_dev, st_ino)`` (hard links).  A failed check raises :class:`~edgepose.errors.UserError`: the CLI
prints one line and exits 2, and no byte of any file has changed.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Tuple, Union

from .errors import UserError

__all__ = ["check_outputs", "same_file", "inside", "paths_in", "with_sidecars", "check_writable", "stale_temporaries", "remove_stale_temporaries"]

PathLike = Union[str, os.PathLike]
Named = Iterable[Tuple[str, Optional[PathLike]]]

# Not files: stdout, "no output", and stream URIs.
_NOT_FILES = {"-", "none", ""}


def _is_file_path(path: Optional[PathLike]) -> bool:
    if path is None:
        return False
    text = str(path)
    return text.lower() not in _NOT_FILES and "://" not in text


def _identity(path: PathLike) -> tuple[str, Optional[tuple[int, int]]]:
    p = Path(path).expanduser()
    try:
        st = os.stat(p)  # follows symlinks, like the open() that would write it
        inode = (st.st_dev, st.st_ino)
    except OSError:
        inode = None
    return os.path.realpath(p), inode


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: same real path, or same inode (hard links)."""
    (ra, ia), (rb, ib) = _identity(a), _identity(b)
    return ra == rb or (ia is not None and ia == ib)


def inside(path: PathLike, folder: PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies somewhere below it (real paths: symlinks, ``..``)."""
    p, f = _identity(path)[0], _identity(folder)[0]
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep) or same_file(path, folder)


def paths_in(label: str, mapping: dict) -> list[tuple[str, str]]:
    """``(label, value)`` for each string value of a dataset / config mapping that names an existing
    file or folder (dataset roots, label files): the inputs a dataset argument brings."""
    return [(f"{label} {k}", v) for k, v in mapping.items()
            if isinstance(v, (str, os.PathLike)) and _is_file_path(v) and Path(v).expanduser().exists()]


def with_sidecars(named: Named) -> list[tuple[str, Optional[PathLike]]]:
    """The pairs plus each path's metadata sidecar ``<file>.json`` (edgepose.metadata.sidecar_path)."""
    from .metadata import sidecar_path

    out: list[tuple[str, Optional[PathLike]]] = []
    for label, path in named:
        out.append((label, path))
        if _is_file_path(path):
            out.append((f"{label} sidecar", sidecar_path(path)))
    return out


def check_writable(label: str, path: PathLike, *, directory: bool = False) -> None:
    """Refuse an output that cannot be written: its folder (or the nearest existing folder above a
    missing one) cannot be written, it is a folder (or, for ``directory=True``, a file), or its file
    system has no free space.

    Creates nothing but one empty probe file, removed at once; never opens an existing output and
    leaves creating missing folders to the writer (as before)."""
    p = Path(path).expanduser()
    folder = p if directory else p.parent
    if directory and p.exists() and not p.is_dir():
        raise UserError(f"{label} {p} is a file, not a folder; pass a folder")
    if not directory and p.is_dir():
        raise UserError(f"{label} {p} is a folder; pass a file name")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{label} {p}: {folder} is a file, not a folder; choose another path")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".edgepose-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{label} {p}: cannot write in {folder} ({exc.strerror}); choose a writable folder") from None
    if not directory and p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{label} {p} is read-only; choose another file or make it writable")
    try:
        st = os.statvfs(folder)
    except OSError:
        return
    if st.f_bavail == 0 and st.f_blocks > 0:
        raise UserError(f"{label} {p}: no space left on the file system of {folder}; free space or choose another disk")


def check_outputs(inputs: Named, outputs: Named, *, dir_outputs: Named = (), input_dirs: Named = (),
                  writable: bool = True) -> None:
    """Refuse an output that is an input or another output, then check that each output is writable.

    ``inputs`` / ``outputs``: ``(label, path)`` pairs (``label`` as the user wrote it, e.g. ``"--jsonl"``);
    ``None``, ``"-"``, ``"none"`` and URIs are skipped.  ``dir_outputs`` are folders a command writes
    into: checked for writability and against the input files only.  ``input_dirs`` are folders a command
    reads every file of (an image folder): a folder output may be neither one of them nor inside one.
    Raises on the first problem."""
    ins = [(k, v) for k, v in inputs if _is_file_path(v)]
    outs = [(k, v) for k, v in outputs if _is_file_path(v)]
    dirs = [(k, v) for k, v in dir_outputs if _is_file_path(v)]
    in_dirs = [(k, v) for k, v in input_dirs if _is_file_path(v)]
    for i, (label, out) in enumerate(outs):
        for in_label, src in ins:
            if same_file(out, src):
                raise UserError(f"{label} {out} is the {in_label} ({src}): writing it would destroy the input; "
                                f"choose another output file")
        for other_label, other in outs[:i]:
            if same_file(out, other):
                raise UserError(f"{label} {out} and {other_label} {other} are the same file; give each output "
                                f"its own file")
    for label, folder in dirs:
        for in_label, src in ins:
            if same_file(folder, src):
                raise UserError(f"{label} {folder} is the {in_label}; choose another output folder")
        for in_label, src in in_dirs:
            if inside(folder, src):
                raise UserError(f"{label} {folder} is the {in_label} {src} or inside it: its files would overwrite "
                                f"the inputs or be read as inputs next time; choose a folder outside {src}")
    if writable:
        for label, out in outs:
            check_writable(label, out)
        for label, folder in dirs:
            check_writable(label, folder, directory=True)


def stale_temporaries(folder: PathLike, name: str) -> list[Path]:
    """Temporaries :func:`edgepose.metadata.atomic_write_bytes` left for ``folder/name`` when killed
    mid-write (``.NAME.XXXX.tmp``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".{name}.*.tmp") if p.is_file())


def remove_stale_temporaries(folder: PathLike, names: Iterable[str]) -> list[tuple[Path, int]]:
    """Delete the stale temporaries of ``names`` in ``folder`` (call at start, when no other writer of
    those files runs); returns ``(path, bytes)`` of what was removed."""
    removed = []
    for name in names:
        for tmp in stale_temporaries(folder, name):
            try:
                size = tmp.stat().st_size
                tmp.unlink()
                removed.append((tmp, size))
            except OSError:
                pass
    return removed
