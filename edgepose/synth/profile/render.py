"""Render a fitted face at a new pose, with its own pixels as texture, and its exact label.

Geometry (orthographic, like the weak-perspective fit; see docs/profiling.md):

* the fit says ``cam = s R_src.T M + t`` (camera frame, source pixels, y up);
* the mesh is rotated about the head centre by ``Q = R_target.T @ R_src`` (camera frame), so its
  points become ``s (Q R_src.T) M + t' = s R_target.T M + t'``: the rendered face shows
  ``R_target``, i.e. the label is the source pose composed with the applied rotation,
  ``R_target = R_src @ Q.T`` (:func:`compose_label`);
* the output image is an orthographic view of the camera frame: pixel ``(u, v) = (size/2 + k (X -
  X0), size/2 - k (Y - Y0))``, so a head-frame point ``p`` lands on
  ``geometry.project_points(R_target, p, centre, k * s)`` (tests/test_profile.py proves it on the
  rendered pixels).

The GL context is the synthetic engine's (:func:`edgepose.synth.renderer._context`): one per
process, EGL on Mesa or a GPU.  Photometric looks (NIR/grey, relighting, blur, sensor noise)
come from :meth:`edgepose.synth.scene.SceneParams.sample`, finished by the same code as the
synthetic heads.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from ... import geometry
from ...errors import UserError, require
from ..renderer import _context, _finish, _mat_bytes
from ..scene import SceneParams
from .fit import FaceFit, canonical_face, image_to_camera
from .mesh import FACE_OVAL, HEAD_CENTER, NOSE_TIP, build_mesh, head_part, mirror_pairs, signed_areas

__all__ = ["ProfileResult", "ProfileRenderer", "get_profile_renderer", "compose_label", "applied_rotation"]

_FILL = 0.55     # face box (oval + nose) side / image side; the synthetic engine's default fill
# landmarks whose source normal faces the camera less than this blend in their mirror's pixels
# (fully below _MIRROR_BELOW - _MIRROR_RAMP) when the mirror faces the camera better
_MIRROR_BELOW, _MIRROR_RAMP = 0.35, 0.25

_VS = """
#version 330
uniform mat4 proj;
in vec3 in_pos; in vec2 in_uv; in vec2 in_uv2; in float in_w; in float in_shade;
out vec2 v_uv; out vec2 v_uv2; out float v_w; out float v_shade;
void main() {
    v_uv = in_uv; v_uv2 = in_uv2; v_w = in_w; v_shade = in_shade;
    gl_Position = proj * vec4(in_pos, 1.0);
}
"""
_FS = """
#version 330
uniform sampler2D tex; uniform int ir; uniform float ir_gain;
in vec2 v_uv; in vec2 v_uv2; in float v_w; in float v_shade; out vec4 f_color;
void main() {
    // v_uv2: the mirror landmark's pixels, blended in where the photo saw the surface edge-on
    vec3 c = mix(texture(tex, v_uv).rgb, texture(tex, v_uv2).rgb, v_w) * v_shade;
    // NIR look: skin reflects the red end most; one grey channel, brighter and flatter
    if (ir == 1) c = vec3(min(dot(c, vec3(0.6, 0.3, 0.1)) * ir_gain, 1.0));
    f_color = vec4(c, 1.0);
}
"""


def applied_rotation(R_src, R_target) -> np.ndarray:
    """The camera-frame rotation ``Q`` that turns a head at ``R_src`` into one at ``R_target``."""
    return geometry.camera_frame(R_target) @ np.asarray(R_src, np.float64)


def compose_label(R_src, Q) -> np.ndarray:
    """The label after rotating a head at ``R_src`` by the camera-frame rotation ``Q`` about any
    point: ``R_src @ Q.T`` (the rows, head axes in camera coordinates, turn with the head)."""
    return np.asarray(R_src, np.float64) @ np.asarray(Q, np.float64).T


@dataclass
class ProfileResult:
    """One profiled render (image pixels: u right, v down)."""

    image: np.ndarray          # BGR uint8 (GRAY when scene.ir)
    R: np.ndarray              # label: the pose the render shows (source pose composed with Q)
    R_src: np.ndarray          # the fitted pose of the source photo
    Q: np.ndarray              # applied camera-frame rotation
    box: tuple                 # face box: the rotated face oval and nose tip
    visibility: float          # 0..1: share of the visible face backed by source pixels at full resolution
    center: tuple              # projection of the head-frame origin (for geometry.project_points)
    scale: float               # pixels per canonical unit (for geometry.project_points)
    scene: SceneParams = field(default_factory=SceneParams)
    source: str = ""

    @property
    def euler(self) -> np.ndarray:
        return geometry.matrix_to_euler(self.R)

    def to_sample(self):
        from ...data.sample import Sample

        return Sample(image=self.image, R=self.R.copy(), box=tuple(self.box), landmarks=None,
                      source=self.source or "profiled",
                      extra={"visibility": self.visibility, "ir": self.scene.ir,
                             "R_src": self.R_src.copy()})


def _ortho(x0: float, y0: float, half: float, z_near: float, z_far: float) -> np.ndarray:
    """Clip matrix: camera X, Y (pixels, y up) around (x0, y0) -> NDC; larger Z (toward the viewer) nearer."""
    dz = z_near - z_far
    return np.array([[1 / half, 0, 0, -x0 / half],
                     [0, 1 / half, 0, -y0 / half],
                     [0, 0, -2 / dz, (z_near + z_far) / dz],
                     [0, 0, 0, 1]], np.float64)


def _shading(N: np.ndarray, scene: SceneParams, relight: bool) -> np.ndarray:
    """Multiplicative relighting of the photo's (already lit) texture with the scene's key light:
    1 for a surface facing the camera, darker away from the light, brighter toward it."""
    if not relight:
        return np.ones(len(N), np.float32)
    L = np.asarray(scene.light.direction, np.float64)
    L /= max(np.linalg.norm(L), 1e-9)
    amb = float(np.mean(scene.light.ambient))
    i = float(scene.light.intensity)
    ref = amb + i * max(L[2], 0.3)  # the value on a camera-facing surface
    shade = scene.light.exposure * (amb + i * np.clip(N @ L, 0, None)) / ref
    return np.clip(shade, 0.25, 1.8).astype(np.float32)


class ProfileRenderer:
    """Renders ``size`` x ``size`` profiled faces, ``ssaa`` x supersampled.  Source textures of
    the last ``cache_size`` photos stay uploaded."""

    def __init__(self, size: int = 128, ssaa: int = 2, cache_size: int = 8):
        if not 16 <= int(size) <= 4096:
            raise UserError(f"crop size {size} out of range: use 16..4096 pixels")
        if ssaa not in (1, 2, 3, 4):
            raise UserError(f"ssaa must be 1, 2, 3 or 4, got {ssaa}")
        self.size, self.ssaa, self.cache_size = int(size), int(ssaa), int(cache_size)
        self.ctx = _context()
        self.prog = self.ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        ss = (self.size * self.ssaa,) * 2
        self.fbo = self.ctx.framebuffer(color_attachments=[self.ctx.renderbuffer(ss, 4)],
                                        depth_attachment=self.ctx.depth_renderbuffer(ss))
        self._tex: OrderedDict[str, tuple] = OrderedDict()
        self._heads: OrderedDict[tuple, object] = OrderedDict()

    def _head(self, key: str, fit: FaceFit):
        """The fit's pose-independent mesh part (built once per photo and fit)."""
        k = (key, fit.R.tobytes(), float(fit.scale), fit.t.tobytes())
        hit = self._heads.get(k)
        if hit is None:
            hit = self._heads[k] = head_part(fit)
            while len(self._heads) > self.cache_size:
                self._heads.popitem(last=False)
        self._heads.move_to_end(k)
        return hit

    def _texture(self, key: str, image: np.ndarray):
        """The padded source photo as an RGB texture, and the padding in pixels."""
        hit = self._tex.get(key)
        if hit is not None:
            self._tex.move_to_end(key)
            return hit
        gl = require("moderngl", "synth", "the face-profiling renderer")
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        pad = max(rgb.shape[:2]) // 2
        # the region beyond the photo is a blurred reflection: plausible background, no hard edge
        padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        blur = cv2.GaussianBlur(padded, (0, 0), max(pad / 16, 1.0))
        inside = np.zeros(padded.shape[:2], np.float32)
        inside[pad:-pad, pad:-pad] = 1
        inside = cv2.GaussianBlur(inside, (0, 0), max(pad / 32, 1.0))[..., None]
        padded = (padded * inside + blur * (1 - inside)).astype(np.uint8)
        tex = self.ctx.texture((padded.shape[1], padded.shape[0]), 3, np.ascontiguousarray(padded).tobytes(),
                               alignment=1)
        tex.filter = (gl.LINEAR_MIPMAP_LINEAR, gl.LINEAR)
        tex.build_mipmaps()
        tex.repeat_x = tex.repeat_y = False
        self._tex[key] = (tex, pad, padded.shape[1], padded.shape[0])
        while len(self._tex) > self.cache_size:
            self._tex.popitem(last=False)[1][0].release()
        return self._tex[key]

    def render(self, image: np.ndarray, fit: FaceFit, R_target, scene: SceneParams | None = None,
               relight: bool = False, key: str | None = None, fill: float = _FILL,
               mirror_fill: bool = True) -> ProfileResult:
        """``image`` (BGR/GRAY) with its ``fit`` rendered at pose ``R_target`` (a crop label).
        ``key`` identifies the photo for the texture cache (default: its buffer address);
        ``relight``: apply the scene's key light; ``mirror_fill``: texture surfaces the photo saw
        edge-on with their mirror side's pixels."""
        R_target = np.asarray(R_target, np.float64)
        if R_target.shape != (3, 3) or not geometry.is_rotation(R_target, atol=1e-4):
            raise UserError("R_target must be a 3x3 rotation matrix (orthonormal, det +1) in the edgepose convention")
        scene = scene or SceneParams()
        gl = require("moderngl", "synth", "the face-profiling renderer")
        Q = applied_rotation(fit.R, R_target)
        s, t = fit.scale, fit.t
        pivot = s * (fit.R.T @ HEAD_CENTER) + t
        # the output region: centred on the rotated face box, the box `fill` of the image
        lm = (image_to_camera(fit.points) - pivot) @ Q.T + pivot
        face = lm[list(FACE_OVAL) + [NOSE_TIP]]
        lo, hi = face[:, :2].min(0), face[:, :2].max(0)
        x0, y0 = (lo + hi) / 2
        half = max(hi - lo) / fill / 2
        key = key or str(image.__array_interface__["data"][0])
        mesh = build_mesh(fit, (x0 - half, -(y0 + half), x0 + half, -(y0 - half)), head=self._head(key, fit))
        V = mesh.vertices.copy()
        V[mesh.rotating] = (V[mesh.rotating] - mesh.pivot) @ Q.T + mesh.pivot
        T = mesh.triangles
        nf = mesh.n_face_tris
        # per-face-triangle visibility and texture density (orthographic: same pixel scale)
        a_src, a_tgt = mesh.face_area, signed_areas(V, T[:nf])
        shown = a_tgt > 0
        q = np.where(a_src > 0, np.clip(a_src / np.maximum(a_tgt, 1e-9), 0, 1), 0.0)
        visibility = float((a_tgt * q)[shown].sum() / a_tgt[shown].sum()) if shown.any() else 0.0
        # far side: landmarks the photo saw edge-on or not at all blend in their mirror's pixels
        # (a second, self-consistent texture mapping: no triangle spans both halves of the face)
        uv2 = mesh.uv.copy()
        w = np.zeros(len(uv2))
        nz = mesh.normals[:468, 2]
        mir = mirror_pairs()
        uv2[:468] = mesh.uv[mir]
        w[:468] = float(mirror_fill) * np.clip((_MIRROR_BELOW - nz) / _MIRROR_RAMP, 0, 1) * np.clip((nz[mir] - nz) / 0.1, 0, 1)
        tex, pad, tw, th = self._texture(key, image)
        norm = lambda uv: np.column_stack([(uv[:, 0] + pad) / tw, (uv[:, 1] + pad) / th])  # noqa: E731
        N = mesh.normals.copy()
        N[mesh.rotating] = N[mesh.rotating] @ Q.T  # normals turn with the head; the border's face the camera
        shade = _shading(N, scene, relight)
        data = np.column_stack([V, norm(mesh.uv), norm(uv2), w, shade]).astype(np.float32)
        vbo = self.ctx.buffer(data.tobytes())
        ibo = self.ctx.buffer(T.astype(np.int32).tobytes())
        vao = self.ctx.vertex_array(self.prog, [(vbo, "3f 2f 2f 1f 1f", "in_pos", "in_uv", "in_uv2", "in_w",
                                                 "in_shade")], ibo)
        zs = V[:, 2]
        self.prog["proj"].write(_mat_bytes(_ortho(x0, y0, half, zs.max() + 1, zs.min() - 1)))
        self.prog["ir"].value = int(scene.ir)
        self.prog["ir_gain"].value = float(1.05 * scene.light.exposure)
        S = self.size * self.ssaa
        self.fbo.use()
        self.ctx.viewport = (0, 0, S, S)
        self.ctx.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        self.ctx.disable(gl.CULL_FACE | gl.BLEND)
        self.ctx.enable(gl.DEPTH_TEST)
        tex.use(0)
        vao.render(gl.TRIANGLES)
        raw = np.frombuffer(self.fbo.read(components=3, alignment=1), np.uint8).reshape(S, S, 3)
        for obj in (vao, vbo, ibo):
            obj.release()
        img = _finish(raw[::-1], self.ssaa, scene)
        k = self.size / (2 * half)
        to_px = lambda p: (self.size / 2 + k * (p[..., 0] - x0), self.size / 2 - k * (p[..., 1] - y0))  # noqa: E731
        fu, fv = to_px(face)
        origin = (t - pivot) @ Q.T + pivot  # the head-frame origin after the rotation
        cu, cv = to_px(origin)
        R = compose_label(fit.R, Q)
        return ProfileResult(image=img, R=R, R_src=fit.R.copy(), Q=Q,
                             box=(float(fu.min()), float(fv.min()), float(fu.max()), float(fv.max())),
                             visibility=visibility, center=(float(cu), float(cv)), scale=float(k * s), scene=scene)


_RENDERERS: dict = {}


def get_profile_renderer(size: int = 128, ssaa: int = 2) -> ProfileRenderer:
    """The process-wide profile renderer for ``size`` (created once, reused)."""
    key = (os.getpid(), int(size), int(ssaa))
    if key not in _RENDERERS:
        _RENDERERS[key] = ProfileRenderer(size, ssaa)
    return _RENDERERS[key]
