"""The bench report: rows (one per measured configuration) and the versioned JSON document.

Schema ``edgepose.bench/1``::

    {"schema": "edgepose.bench/1", "created": ISO-8601, "command": str, "duration_s": float,
     "suite": {"name", "path", "config"}, "platform": {...fingerprint...}, "board": {...},
     "rows": [Row, ...]}

A row's ``status`` is ``ok``, ``skipped`` (with ``reason``: what is missing and how to get it) or
``failed`` (with ``reason``: the error).  Latencies are milliseconds per call of ``batch``
faces; ``fps`` is faces (model rows) or frames (pipeline rows) per second.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgepose.errors import UserError

__all__ = ["SCHEMA", "STAGES", "STATUSES", "Row", "row_key", "new_report", "validate_report", "ReportError"]

SCHEMA = "edgepose.bench/1"

#: pipeline stages in order, one column each in a report (edgepose.pipelines.stats.STAGES without
#: "total"); here, not in report.py, so that report and plots both import it without a circle
STAGES = ("decode", "detect", "track", "pose", "smooth", "overlay", "encode")
STATUSES = ("ok", "skipped", "failed")


class ReportError(UserError):
    """A bench report (e.g. a --compare baseline) is not a valid edgepose.bench document."""


@dataclass
class Row:
    kind: str  # "model" | "pipeline"
    name: str  # peer name from the suite, e.g. "whenet", "student-mnv3s"
    role: str = ""  # "imported-teacher" | "teacher" | "student"
    backend: str = ""  # torch | ort-cpu | ort-cuda | ort-trt | tensorrt
    precision: str = "fp32"  # fp32 | fp16 | int8-cpu | int8-tensorrt
    device: str = "cpu"
    batch: int = 1
    input_size: int | None = None
    status: str = "ok"
    reason: str = ""
    artifact: str | None = None
    model: str | None = None  # registry architecture
    size_mb: float | None = None
    build_s: float | None = None  # export / quantization / engine build time of the artifact
    latency_ms: dict[str, float] = field(default_factory=dict)  # n, mean, std, min, max, p50, p90, p99
    fps: float | None = None
    peak_mem_mb: float | None = None
    mem_kind: str | None = None  # "rss-delta" (host) | "cuda-max-allocated"
    accuracy: dict[str, Any] = field(default_factory=dict)
    power: dict[str, Any] = field(default_factory=dict)
    pipeline: dict[str, Any] = field(default_factory=dict)  # stages, e2e, frames, dropped, ...
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"row status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Row":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def label(self) -> str:
        size = f"@{self.input_size}" if self.input_size else ""
        return f"{self.name}{size} {self.backend} {self.precision} b{self.batch}"


def row_key(row: dict | Row) -> tuple:
    """Identity of a row across runs (what --compare matches on)."""
    d = row.to_dict() if isinstance(row, Row) else row
    return (d.get("kind"), d.get("name"), d.get("backend"), d.get("precision"), d.get("device"),
            int(d.get("batch") or 1), d.get("input_size"))


def new_report(suite: dict, platform: dict, board: dict, command: str) -> dict:
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command, "duration_s": None, "suite": suite, "platform": platform, "board": board,
            "rows": []}


_REQUIRED = {"schema": str, "created": str, "command": str, "suite": dict, "platform": dict, "board": dict,
             "rows": list}
_ROW_REQUIRED = {"kind": str, "name": str, "backend": str, "precision": str, "batch": int, "status": str,
                 "latency_ms": dict}


def validate_report(doc: Any, source: str = "report") -> dict:
    """Check the document's structure; raise ReportError naming the first problem."""
    if not isinstance(doc, dict):
        raise ReportError(f"{source} is not a JSON object; expected an edgepose.bench report")
    schema = doc.get("schema")
    if not isinstance(schema, str) or schema.split("/")[0] != SCHEMA.split("/")[0]:
        raise ReportError(f"{source} has schema {schema!r}, expected {SCHEMA!r}; is it an edgepose-bench JSON report?")
    if schema != SCHEMA:
        raise ReportError(f"{source} uses {schema}, this edgepose reads {SCHEMA}; re-run the baseline with this version")
    for key, tp in _REQUIRED.items():
        if not isinstance(doc.get(key), tp):
            raise ReportError(f"{source}: field {key!r} missing or not a {tp.__name__}")
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            raise ReportError(f"{source}: rows[{i}] is not an object")
        for key, tp in _ROW_REQUIRED.items():
            if not isinstance(row.get(key), tp):
                raise ReportError(f"{source}: rows[{i}].{key} missing or not a {tp.__name__}")
        if row["status"] not in STATUSES:
            raise ReportError(f"{source}: rows[{i}].status {row['status']!r} is not one of {STATUSES}")
        if row["status"] != "ok" and not row.get("reason"):
            raise ReportError(f"{source}: rows[{i}] is {row['status']} without a reason")
    return doc
