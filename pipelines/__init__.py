"""edgepose.pipelines: GStreamer video I/O behind ``edgepose run``.

* :mod:`.sources`   URI parsing (file / v4l2 / csi / rtsp / test / images)
* :mod:`.templates` ``templates/<platform>.yaml`` -> launch strings (desktop, jetson)
* :mod:`.frames`    stride-aware GstSample -> numpy copy
* :mod:`.reader`    :class:`VideoSource` (appsink pull loop, source errors, reconnects)
* :mod:`.images`    image folders: :class:`ImageFolderSource` (OpenCV) and the annotated copies
* :mod:`.writer`    :class:`VideoOutput` (appsrc -> mp4 / display), :mod:`.rtsp` (gst-rtsp-server)
* :mod:`.jsonl`, :mod:`.stats`  metadata records and latency statistics
* :mod:`.loop`      :class:`FrameLoop`, one pass in steps (open, per frame, finish); :mod:`.summary`
* :mod:`.runner`    :func:`run_pipeline`, one pass with keyword options
* :mod:`.options`, :mod:`.builder`  :class:`RunOptions` -> :func:`build_run` -> :class:`Run` (models,
  DMS, outputs, limits: the one wiring of a run); :mod:`.stop` Ctrl-C / SIGTERM handling

GStreamer (``gi``) is imported only when a pipeline is built.
"""
from .builder import Run, build_run
from .loop import Outputs
from .options import DmsOptions, RunOptions
from .runner import FrameObserver, RunSummary, run_pipeline
from .sources import SourceSpec, parse_source

__all__ = ["DmsOptions", "FrameObserver", "Outputs", "Run", "RunOptions", "RunSummary", "SourceSpec", "build_run",
           "parse_source", "run_pipeline"]
