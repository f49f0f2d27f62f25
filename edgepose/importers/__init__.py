"""Public teachers as edgepose checkpoints: WHENet (Keras .h5), 6DRepNet and HopeNet (PyTorch).

``get_importer(name).load(path) -> PoseModel``; ``edgepose import NAME PATH -o teacher.pt``.
See docs/importers.md.
"""
from .base import Importer, get_importer, list_importers, register_importer  # noqa: F401

__all__ = ["Importer", "get_importer", "list_importers", "register_importer"]
