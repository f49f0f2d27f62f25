"""The summary of one pass through a source: the last JSONL record, ``--stats`` and what the CLIs print."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..runrecord import SCHEMA

__all__ = ["RunSummary"]


@dataclass
class RunSummary:
    frames: int = 0
    wall_s: float = 0.0
    fps: float = 0.0
    interrupted: bool = False
    faces_total: int = 0
    frames_with_faces: int = 0
    width: int | None = None
    height: int | None = None
    source_fps: float | None = None
    reconnects: int = 0
    edit_list_skipped: int = 0
    dropped_frames: int = 0  # files: frames lost to corrupt data / decode errors (gaps in the timeline)
    decode_warnings: int = 0  # warnings the decoder or demuxer posted
    decode_errors: int = 0  # image folders: images that could not be read or decoded (skipped)
    undecodable: list = field(default_factory=list)  # image folders: their file names
    ended_early_s: list | None = None  # files: [last frame end, declared duration] when cut off
    frames_written: int = 0  # frames in the video (image folders: annotated copies written)
    # side outputs that failed during the run (disk full, ...): sink, target, frame, at, error
    sink_failures: list = field(default_factory=list)
    dms: dict | None = None  # the DMS observer's summary (events, MQTT link, events file)
    # tracker id switches on videos/streams (edgepose.runtime.idswitch); None for image folders
    id_switches: dict | None = None
    latency_ms: dict = field(default_factory=dict)
    table: str = ""

    def to_record(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "table"}
        return {"type": "summary", "schema": SCHEMA, **d}
