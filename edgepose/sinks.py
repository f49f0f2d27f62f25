"""When a side output fails: stop that sink, say so once, keep monitoring (docs/pipeline.md).

Driver monitoring is the product; the recording, the metadata file and the events file are side
outputs.  A full disk or a vanished mount stops the one sink that hit it: the failure is logged once
as an error and recorded (:func:`sink_failure`) for the run summary, and detection, pose, the DMS and
the other sinks go on.
"""
from __future__ import annotations

import datetime as _dt
import logging

__all__ = ["sink_failure"]

log = logging.getLogger("edgepose.sinks")


def sink_failure(sink: str, target, exc: BaseException, frame: int | None = None) -> dict:
    """Log ``sink`` (``video``, ``jsonl``, ``dms-events``) as failed on ``target`` and return the summary
    record: which sink, where, at which frame, when (UTC) and why."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    log.error("%s output %s failed%s: %s; that output is stopped, monitoring goes on", sink, target,
              f" at frame {frame}" if frame is not None else "", reason)
    return {"sink": sink, "target": str(target), "frame": frame, "at": at, "error": reason}
