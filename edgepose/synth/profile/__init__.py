"""Face profiling: real faces rendered at new poses with their own pixels and exact labels.

    from edgepose.synth.profile import FaceMesh, fit_pose, get_profile_renderer
    fit = fit_pose(FaceMesh()(image, box).points)            # dense fit + source pose
    res = get_profile_renderer(128).render(image, fit, R)    # res.image shows pose res.R == R

The 300W-LP recipe (Zhu et al., CVPR 2016) on our own photos; see docs/profiling.md.  Needs
moderngl + EGL (``edgepose[synth]``) and, for the fit, ``edgepose[profile]`` plus MediaPipe's
face-landmark model (``pip install --no-deps mediapipe==0.10.14``).
"""
from __future__ import annotations

__all__ = ["FaceMesh", "FaceFit", "fit_pose", "canonical_face", "ProfileRenderer", "ProfileResult",
           "get_profile_renderer", "compose_label", "applied_rotation"]

_HOME = {"FaceMesh": "facemesh", "FaceFit": "fit", "fit_pose": "fit", "canonical_face": "fit",
         "ProfileRenderer": "render", "ProfileResult": "render", "get_profile_renderer": "render",
         "compose_label": "render", "applied_rotation": "render"}


def __getattr__(name):
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(name)
