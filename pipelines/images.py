"""Image folders as a source and as an output: ``edgepose run photos/ --output annotated/``.

* :class:`ImageFolderSource` yields one :class:`~edgepose.pipelines.reader.Frame` per image of an
  ``images`` source (``edgepose.pipelines.sources``: a folder, one level, or ``folder/PATTERN``), in
  natural name order.  Images are decoded with OpenCV (EXIF orientation applied, as photo viewers and
  labelling tools show them; BGR, or one channel for ``format=GRAY8``); they may differ in size.
  An image that cannot be read or decoded is skipped with a warning and counted (``decode_errors``,
  ``undecodable``); the run goes on.  Frames carry the image's file name (``Frame.name``) and the
  timestamp ``position x PERIOD_NS``, so ``pts_ns / 1e9`` is the image's place in the listing.
* :class:`AnnotatedImages` writes each annotated frame into a folder under the image's own file name
  (same format, by its suffix), atomically.

The frames are independent: :class:`~edgepose.pipelines.loop.FrameLoop` starts a new scene on the
processor before each one (no track, smoothing filter or driver carried over).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import SourceError, UserError
from .reader import Frame
from .sources import SourceSpec, check_image_source

__all__ = ["ImageFolderSource", "AnnotatedImages", "PERIOD_NS", "VIDEO_SUFFIXES"]

log = logging.getLogger(__name__)

#: nominal time between two images (1 s): pts_ns = position in the listing x PERIOD_NS
PERIOD_NS = 1_000_000_000
#: outputs that are videos: refused as the --output of an image folder (it writes a folder)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".ts")
_WARN_FIRST = 5  # bad images warned one by one; the rest at debug level (the summary counts them all)


class ImageFolderSource:
    """The frames of an image folder; the attributes the frame loop reads of a :class:`VideoSource`."""

    def __init__(self, spec: SourceSpec, *, should_stop: Callable[[], bool] = lambda: False):
        self.spec = spec
        self.should_stop = should_stop
        self.paths = check_image_source(spec)
        self.fps: float = 1e9 / PERIOD_NS
        self.width: int | None = None  # of the first image (the header's; later images may differ)
        self.height: int | None = None
        self.reconnect_count = 0
        self.edit_list_skipped = 0
        self.dropped_frames = 0
        self.decode_warnings = 0
        self.ended_early_s = None
        self.decode_errors = 0
        self.undecodable: list[str] = []  # file names of the images skipped

    @property
    def expected_frames(self) -> int:
        return len(self.paths)

    def close(self) -> None:
        """Nothing stays open between two images."""

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        flags = cv2.IMREAD_GRAYSCALE if self.spec.format == "GRAY8" else cv2.IMREAD_COLOR
        index, first_error = 0, None
        for position, path in enumerate(self.paths):
            if self.should_stop():
                return
            t0 = time.perf_counter()
            try:
                data = np.frombuffer(path.read_bytes(), np.uint8)
                image = cv2.imdecode(data, flags) if data.size else None
                why = "not a decodable image (corrupt, truncated or another format)"
            except OSError as exc:
                image, why = None, f"cannot be read ({exc.strerror})"
            if image is None:
                first_error = first_error or f"{path.name}: {why}"
                self._skip(path, why)
                continue
            if self.width is None:
                self.height, self.width = image.shape[:2]
            yield Frame(np.ascontiguousarray(image), position * PERIOD_NS, index,
                        (time.perf_counter() - t0) * 1e3, None, name=path.name)
            index += 1
        if index == 0:
            raise SourceError(f"none of the {len(self.paths)} images of {self.spec.name} could be decoded "
                              f"({first_error}); check the files")

    def _skip(self, path: Path, why: str) -> None:
        self.decode_errors += 1
        self.undecodable.append(path.name)
        (log.warning if self.decode_errors <= _WARN_FIRST else log.debug)(
            "%s %s; skipped, the run goes on", path, why)


class AnnotatedImages:
    """Annotated copies of the images, one file per frame, named as the input image."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.frames_written = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--output {self.folder}: cannot create the folder ({exc.strerror}); "
                            f"choose a writable folder") from None

    def write(self, image: np.ndarray, name: str) -> None:
        """Encode by the name's suffix and write atomically (a crash never leaves half an image)."""
        import cv2

        from ..metadata import atomic_write_bytes

        ok, buf = cv2.imencode(Path(name).suffix.lower(), image)
        if not ok:
            raise UserError(f"cannot encode the annotated copy of {name}; the format of its suffix is not "
                            f"supported by this OpenCV build")
        try:
            atomic_write_bytes(self.folder / name, buf.tobytes())
        except OSError as exc:
            raise UserError(f"cannot write {self.folder / name} ({exc.strerror})") from None
        self.frames_written += 1
