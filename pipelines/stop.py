"""Ctrl-C / SIGTERM finish a run instead of killing it: the MP4 gets its index through EOS and the
JSONL ends with its summary record (docs/pipeline.md).  Used by :meth:`edgepose.pipelines.builder.Run.execute`
when ``RunOptions.handle_signals`` is set (the ``edgepose run`` and ``edgepose demo`` commands)."""
from __future__ import annotations

import signal
import sys
import threading

__all__ = ["StopFlag"]


class StopFlag:
    """SIGINT/SIGTERM set a flag the loop polls; a second Ctrl-C aborts at once.

    Handlers are installed only in the main thread (Python allows no other) and restored on exit."""

    def __init__(self):
        self.event = threading.Event()
        self._old = {}

    def __call__(self) -> bool:
        return self.event.is_set()

    def _handler(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print(f"\n{signal.Signals(signum).name}: finishing the outputs (press Ctrl-C again to abort)",
              file=sys.stderr)

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
