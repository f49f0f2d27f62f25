"""Helpers for tests that start edgepose in a subprocess."""
from __future__ import annotations


def default_sigint() -> None:
    """``preexec_fn`` for subprocesses a test interrupts with SIGINT. A test run started in the background
    by a non-interactive shell inherits an *ignored* SIGINT, and Python then installs no
    KeyboardInterrupt handler in the child: restore the default so Ctrl-C behaves as in a terminal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
