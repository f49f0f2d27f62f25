"""MediaPipe Face Mesh in video mode, run by MediaPipe's own runtime: the peer of the side-by-side bench.

What a user would run instead of edgepose: ``mp.solutions.face_mesh.FaceMesh(static_image_mode=False)``
of the 0.10.x PyPI wheel.  That solution is one MediaPipe graph,
``mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb``: BlazeFace short-range
detection, then the 468-point landmark model on an ROI that each frame re-crops from the previous
frame's landmarks (``use_prev_landmarks``), with the detector run again only while fewer than
``num_faces`` faces are tracked.  This module starts that same graph with the same side packets.

Why not ``FaceMesh(...).process()`` itself: in an environment with protobuf >= 5 (which onnx >= 1.16
needs, see :mod:`edgepose.synth.profile.facemesh`) the solution wrapper fails twice -- setting its
calculator options reads ``FieldDescriptor.label`` and reading its outputs calls
``MessageFactory.GetPrototype``, both gone from newer protobuf.  The graph is therefore started with
the detection / tracking thresholds the graph file holds (0.5 / 0.5, the same as FaceMesh's
defaults), and the landmark protos are parsed from their serialized form.  Everything that computes
(the graph, its calculators, TFLite with XNNPACK) is MediaPipe's own C++.

The dense-landmark model that :mod:`edgepose.synth.profile.facemesh` runs with LiteRT is the same
``face_landmark.tflite`` from the same wheel; this module leaves that loader alone because the peer
must include MediaPipe's detector and its ROI tracking, which only the graph has.  Points come back in
that module's convention (image pixels, z toward the viewer), so :func:`edgepose.synth.profile.fit.fit_pose`
fits them directly.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ..errors import first_line

__all__ = ["MediaPipeFaceMesh", "unavailable_reason", "GRAPH"]

#: the graph of ``mp.solutions.face_mesh.FaceMesh`` (its ``_BINARYPB_FILE_PATH``), relative to site-packages
GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
_STEP_US = 33333  # when no timestamps are given: 30 fps, as the solution wrapper simulates


def unavailable_reason() -> str | None:
    """None when MediaPipe's runtime can run the face-mesh graph here, else why not (one line)."""
    if importlib.util.find_spec("mediapipe") is None:
        return "mediapipe is not installed (pip install mediapipe==0.10.14, or --no-deps plus attrs)"
    try:
        import mediapipe  # noqa: F401  (its __init__ imports the solutions, which need attrs)
        from mediapipe.python._framework_bindings import calculator_graph  # noqa: F401
    except ModuleNotFoundError as exc:  # a wheel installed with --no-deps lacks its pure-Python deps
        hint = "pip install attrs" if exc.name == "attr" else f"install {exc.name}"
        return f"mediapipe's runtime needs the module {exc.name!r}, which is not installed ({hint})"
    except Exception as exc:  # a binary that does not load on this machine
        return f"mediapipe's runtime does not import here ({type(exc).__name__}: {first_line(exc)})"
    root = _site_root()
    if not (root / GRAPH).is_file():
        return f"mediapipe's face-mesh graph is missing ({root / GRAPH}); reinstall mediapipe 0.10.x"
    return None


def _site_root() -> Path:
    """The folder holding the ``mediapipe`` package (MediaPipe resolves its model paths from there)."""
    spec = importlib.util.find_spec("mediapipe")
    return Path(spec.submodule_search_locations[0]).parent


class MediaPipeFaceMesh:
    """``process(rgb, t_us) -> list`` of serialized-and-parsed landmark lists (the Python API's cost);
    :meth:`points` turns one into (468, 3) image pixels.  :meth:`restart` begins a new video (fresh
    tracking state, as a new ``FaceMesh`` object would)."""

    def __init__(self, max_faces: int = 1, refine_landmarks: bool = False):
        reason = unavailable_reason()
        if reason:
            from ..errors import DependencyError

            raise DependencyError(reason)
        from mediapipe.python._framework_bindings import resource_util

        self.max_faces, self.refine = int(max_faces), bool(refine_landmarks)
        resource_util.set_resource_dir(str(_site_root()))
        self._graph = None
        self._out: dict = {}
        self._t_us = 0
        self.restart()

    def restart(self) -> None:
        from mediapipe.python import packet_creator
        from mediapipe.python._framework_bindings import calculator_graph

        self.close()
        graph = calculator_graph.CalculatorGraph(binary_graph_path=os.fspath(_site_root() / GRAPH))
        graph.observe_output_stream("multi_face_landmarks", lambda name, packet: self._out.__setitem__(name, packet),
                                    True)
        graph.start_run({"num_faces": packet_creator.create_int(self.max_faces),
                         "with_attention": packet_creator.create_bool(self.refine),
                         "use_prev_landmarks": packet_creator.create_bool(True)})  # video mode
        self._graph, self._t_us = graph, 0

    def process(self, rgb: np.ndarray, t_us: int | None = None) -> list:
        """One RGB frame (H, W, 3 uint8, C-contiguous) through the graph; the faces' landmark lists."""
        from mediapipe.framework.formats import landmark_pb2
        from mediapipe.python import packet_creator
        from mediapipe.python._framework_bindings import _packet_getter, image_frame

        # timestamps must increase within a run; the caller's are used when they do
        self._t_us = int(t_us) if t_us is not None and t_us > self._t_us else self._t_us + _STEP_US
        self._out.clear()
        packet = packet_creator.create_image_frame(image_format=image_frame.ImageFormat.SRGB, data=rgb)
        self._graph.add_packet_to_input_stream(stream="image", packet=packet.at(self._t_us))
        self._graph.wait_until_idle()
        out = self._out.get("multi_face_landmarks")
        faces = []
        if out is not None:
            for blob in _packet_getter._get_serialized_proto_list(out):
                msg = landmark_pb2.NormalizedLandmarkList()
                msg.ParseFromString(blob)
                faces.append(msg)
        return faces

    @staticmethod
    def points(face, width: int, height: int) -> np.ndarray:
        """(N, 3) image pixels, z toward the viewer in x's pixel scale (MediaPipe's z grows away from
        the camera and is scaled like x), the convention of edgepose.synth.profile.facemesh."""
        a = np.array([(p.x, p.y, p.z) for p in face.landmark], np.float64)
        return np.column_stack([a[:, 0] * width, a[:, 1] * height, -a[:, 2] * width])

    def close(self) -> None:
        if self._graph is not None:
            try:
                self._graph.close()
            finally:
                self._graph = None
