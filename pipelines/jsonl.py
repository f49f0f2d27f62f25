"""The run record's old home: its schema, writer, reader and validator now live in
:mod:`edgepose.runrecord` (one owner).  These names stay importable from here."""
from __future__ import annotations

from ..runrecord import SCHEMA, face_record, validate_record
from ..runrecord import RunRecordWriter as JsonlWriter

__all__ = ["JsonlWriter", "SCHEMA", "face_record", "validate_record"]
