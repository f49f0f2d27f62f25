"""edgepose.pipelines: GStreamer video I/O behind ``edgepose run``.

* :mod:`.sources`   URI parsing (file / v4l2 / csi / rtsp / test)
* :mod:`.templates` ``templates/<platform>.yaml`` -> launch strings (desktop, jetson)
* :mod:`.frames`    stride-aware GstSample -> numpy copy
* :mod:`.reader`    :class:`VideoSource` (appsink pull loop, source errors, reconnects)
* :mod:`.writer`    :class:`VideoOutput` (appsrc -> mp4 / display), :mod:`.rtsp` (gst-rtsp-server)
* :mod:`.jsonl`, :mod:`.stats`  metadata records and latency statistics
* :mod:`.runner`    :func:`run_pipeline`, the frame loop with frame observers

GStreamer (``gi``) is imported only when a pipeline is built.
"""
from .runner import FrameObserver, RunSummary, run_pipeline
from .sources import SourceSpec, parse_source

__all__ = ["FrameObserver", "RunSummary", "SourceSpec", "parse_source", "run_pipeline"]
