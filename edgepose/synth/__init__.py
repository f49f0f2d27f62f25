"""Synthetic head engine: procedural whole heads rendered off-screen with exact pose labels.

    from edgepose.synth import HeadIdentity, render, render_positive, SynthHeadDataset
    res = render(HeadIdentity.from_seed(7), R)          # RenderResult(image, R, box, keypoints, ...)
    pos = render_positive(R, HeadIdentity.from_seed(8))  # same pose, another person (CLERF positive)

The renderer needs moderngl (``pip install 'edgepose[synth]'``) and an EGL driver (Mesa llvmpipe
on CPU, or a GPU driver).  Everything is imported lazily so ``import edgepose.synth`` is cheap.
See docs/synth.md.
"""
from __future__ import annotations

__all__ = ["HeadIdentity", "identity_seeds", "SPLIT_RANGES", "build_head", "KEYPOINT_NAMES", "SceneParams",
           "CameraParams", "LightParams", "POSE_RANGES", "sample_pose", "RenderResult", "HeadRenderer",
           "get_renderer", "render", "render_positive", "SynthConfig", "SynthHeadDataset", "export_dataset",
           "render_video"]

_HOME = {
    "HeadIdentity": "identity", "identity_seeds": "identity", "SPLIT_RANGES": "identity",
    "build_head": "mesh", "KEYPOINT_NAMES": "mesh",
    "SceneParams": "scene", "CameraParams": "scene", "LightParams": "scene", "POSE_RANGES": "scene",
    "sample_pose": "scene",
    "RenderResult": "renderer", "HeadRenderer": "renderer", "get_renderer": "renderer", "render": "renderer",
    "render_positive": "renderer",
    "SynthConfig": "dataset", "SynthHeadDataset": "dataset",
    "export_dataset": "export", "render_video": "video",
}


def __getattr__(name):
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(name)
