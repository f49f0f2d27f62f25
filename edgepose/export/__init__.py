"""ONNX export: checkpoint / PoseModel -> single-file ONNX with in-graph pose decode + metadata.

Public API::

    from edgepose.export import export_onnx
    report = export_onnx("teacher.pt", "teacher.onnx")      # or a PoseModel instance
    report.max_abs_diff                                      # worst |torch - onnxruntime| seen

See docs/export.md.
"""
from .onnx_export import ExportReport, export_onnx, load_model_for_export  # noqa: F401
from .wrapper import ExportWrapper  # noqa: F401

__all__ = ["ExportReport", "export_onnx", "load_model_for_export", "ExportWrapper"]
