"""User-facing errors.

Anything a user can cause (a missing file, a bad config key, a corrupt video, a model with the
wrong input size) raises :class:`UserError` with a message that names the problem and the fix.
The CLI prints it on one line and exits with status 2, with no traceback; ``EDGEPOSE_DEBUG=1``
shows the traceback when a developer needs it.
"""
from __future__ import annotations


class UserError(Exception):
    """An error caused by input, configuration or environment, with a fix in its message."""

    exit_code = 2


class DataError(UserError):
    """A dataset path, format or content problem."""


class ModelError(UserError):
    """A model artifact is missing, unreadable or incompatible."""


class SourceError(UserError):
    """A video source cannot be opened or decoded."""


class DependencyError(UserError):
    """An optional dependency is missing; the message names the extra to install."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise a DependencyError naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{purpose} needs the Python module '{module}' ({exc}); install it with "
            f"`pip install 'edgepose[{extra}]'`") from None


def guarded(fn, *a, **kw) -> int:
    """Run a command; user errors print one clear line instead of a traceback.

    Lives here, not in the CLI, so that the ``python -m`` tools inside library packages get the
    same behaviour without importing ``edgepose.cli`` (nothing imports the CLI; .importlinter).
    """
    import os
    import sys

    try:
        return fn(*a, **kw)
    except UserError as exc:
        if os.environ.get("EDGEPOSE_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to ``limit`` characters: third-party errors
    (protobuf, onnxruntime, torch) span many lines, and a user error is one line."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]
