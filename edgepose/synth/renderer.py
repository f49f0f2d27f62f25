"""Off-screen rendering of synthetic heads with exact labels (moderngl; EGL on CPU or GPU).

One GL context per process, created on first use; programs, framebuffers and per-identity
vertex buffers are reused (an LRU cache of uploaded meshes), so a worker renders hundreds of
images per second at 128 x 128 on llvmpipe.

Labels follow the camera of :mod:`edgepose.synth.scene`: ``R`` is the head rotation relative
to the CAMERA AXES in edgepose's convention; ``R_crop`` is the rotation relative to the viewing
ray through the face-box centre, i.e. what a crop centred on the box shows, and exactly what the
runtime's perspective correction undoes: ``geometry.perspective_correction(R_crop, K,
crop_center) == R`` with ``crop_center`` = the box centre (``preprocess.crop_box`` with the
default ``CropPolicy``).  ``render(..., pose="crop")`` (the default) takes the crop pose and, for
a head without ``head_offset``, puts the crop centre on the optical axis so ``R == R_crop``;
``pose="camera"`` takes the camera-axes pose with the skull centre at ``head_offset``.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .. import geometry
from ..errors import UserError, require
from .background import make_background
from .identity import HeadIdentity
from .mesh import KEYPOINT_NAMES, MATERIALS, HeadMesh, build_head
from .scene import SceneParams

__all__ = ["RenderResult", "HeadRenderer", "get_renderer", "render", "render_positive"]

log = logging.getLogger(__name__)

_NEAR, _FAR = 0.05, 20.0
_N_MAT = len(MATERIALS)
# NIR (850-940 nm) reflectance per material: skin is bright and flat, irises lighten, dark hair
# reflects far more than in visible light, dyed fabrics converge toward mid-grey.
_IR_REFL = np.zeros(_N_MAT, np.float32)
for _k, _v in {"skin": 0.62, "lips": 0.58, "sclera": 0.7, "iris": 0.42, "pupil": 0.04, "brow": 0.3,
               "hair": 0.33, "cloth": 0.45, "frame": 0.12, "lens": 0.85, "mask": 0.7, "cap": 0.4}.items():
    _IR_REFL[MATERIALS[_k]] = _v
_SHINE = np.zeros(_N_MAT, np.float32)
for _k, _v in {"skin": 0.08, "lips": 0.2, "sclera": 0.6, "iris": 0.6, "pupil": 0.6, "frame": 0.4,
               "lens": 0.9, "hair": 0.1}.items():
    _SHINE[MATERIALS[_k]] = _v

# Lighting is evaluated per vertex (the meshes are dense; llvmpipe is fragment-bound), only the
# hard shadow band is per fragment so its edge stays sharp.
_VS = """
#version 330
uniform mat4 proj;
uniform mat3 rot;      // R3 = R^T: head frame -> camera frame
uniform vec3 trans;    // head pivot in the camera frame
uniform vec3 light_dir; uniform vec3 light_col; uniform vec3 ambient; uniform float exposure;
uniform int ir; uniform int bright_pupil; uniform vec3 ir_pos; uniform float ir_gain;
uniform float ir_refl[%(n)d]; uniform float shine[%(n)d];
in vec3 in_pos; in vec3 in_nrm; in vec4 in_col; in float in_mat;
out vec3 v_cam; out vec3 v_base; out vec3 v_direct; out float v_alpha;
void main() {
    vec3 p = rot * in_pos + trans;
    int m = int(in_mat + 0.5);
    vec3 V = normalize(-p);
    vec3 n = normalize(rot * in_nrm);
    if (dot(n, V) < 0.0) n = -n;              // two-sided thin parts (brim, frames, lenses)
    // skin and lips scatter light under the surface: a softer (wrapped) terminator
    float wrap = (m == %(skin)d || m == %(lips)d) ? 0.25 : 0.0;
    float diff = max((dot(n, light_dir) + wrap) / (1.0 + wrap), 0.0);
    float spec = pow(max(dot(reflect(-light_dir, n), V), 0.0), 40.0) * shine[m];
    vec3 albedo = in_col.rgb;
    if (ir == 1) {
        float a = mix(ir_refl[m], dot(albedo, vec3(0.3, 0.59, 0.11)), 0.3);
        if (m == %(sclera)d && length(albedo) < 0.1) a = bright_pupil == 1 ? 0.95 : 0.03;  // pupil
        vec3 L = ir_pos - p; float d = length(L); L /= d;
        float e = ir_gain * max(dot(n, L), 0.0) / (d * d);
        float hs = pow(max(dot(reflect(-L, n), V), 0.0), 60.0) * shine[m] * ir_gain / (d * d);
        v_base = vec3(a * (e + 0.04) + hs) * exposure;
        v_direct = vec3(a * dot(light_col, vec3(0.33)) * diff) * exposure;
    } else {
        v_base = albedo * ambient * exposure;
        v_direct = (albedo * light_col * diff + light_col * spec) * exposure;
    }
    v_cam = p;
    // most sunglasses pass NIR: lenses turn nearly clear under the illuminator
    v_alpha = (ir == 1 && m == %(lens)d) ? min(in_col.a, 0.2) : in_col.a;
    gl_Position = proj * vec4(p, 1.0);
}
"""

_FS = """
#version 330
uniform vec4 band; uniform vec3 band_u; uniform vec3 band_v; uniform vec3 head_c;
in vec3 v_cam; in vec3 v_base; in vec3 v_direct; in float v_alpha;
out vec4 f_color;
void main() {
    // hard shadow band (window frame / pillar) in the plane perpendicular to the sun
    vec3 q = v_cam - head_c;
    float s = cos(band.x) * dot(q, band_u) + sin(band.x) * dot(q, band_v) - band.y;
    float lit = 1.0 - band.w * (1.0 - smoothstep(band.z, band.z + 0.002, abs(s)));
    f_color = vec4(v_base + v_direct * lit, v_alpha);
}
"""

_BG_VS = """
#version 330
in vec2 in_xy; out vec2 uv;
void main() { uv = vec2(in_xy.x * 0.5 + 0.5, 0.5 - in_xy.y * 0.5); gl_Position = vec4(in_xy, 0.9999, 1.0); }
"""
_BG_FS = """
#version 330
uniform sampler2D tex; in vec2 uv; out vec4 f_color;
void main() { f_color = vec4(texture(tex, uv).rgb, 1.0); }
"""


@dataclass
class RenderResult:
    """One rendered head with its exact labels (image pixels: u right, v down; the top-left pixel
    covers [0, 1) x [0, 1))."""

    image: np.ndarray            # BGR uint8 HxWx3, or GRAY uint8 HxW for NIR scenes
    R: np.ndarray                # 3x3 head rotation relative to the camera axes
    R_crop: np.ndarray           # 3x3 relative to the viewing ray through the box centre
    box: tuple                   # face box (x1, y1, x2, y2), see docs/synth.md
    keypoints: np.ndarray        # (8, 2) in KEYPOINT_NAMES order
    visible: np.ndarray          # (8,) bool: inside the image, facing the camera, not occluded
    K: np.ndarray                # 3x3 OpenCV intrinsics of the output image
    center_uv: tuple             # projection of the head pivot (skull centre)
    identity_seed: int
    scene: SceneParams
    keypoint_names: tuple = field(default=KEYPOINT_NAMES)

    @property
    def euler(self) -> np.ndarray:
        """(pitch, yaw, roll) degrees of ``R`` (the 6DRepNet decode)."""
        return geometry.matrix_to_euler(self.R)

    def to_sample(self, source: str = ""):
        """An :class:`edgepose.data.Sample` (label = ``R_crop``, what the face crop shows)."""
        from ..data.sample import Sample

        lm = self.keypoints[:5].astype(np.float64)
        return Sample(image=self.image, R=self.R_crop.copy(), box=tuple(self.box), landmarks=lm,
                      source=source or f"synth:id{self.identity_seed}",
                      extra={"visible": self.visible.copy(), "keypoints": self.keypoints.copy(),
                             "ir": self.scene.ir, "identity": self.identity_seed})


def _projection(f: float, cx: float, cy: float, w: int, h: int) -> np.ndarray:
    """OpenGL clip matrix reproducing u = cx + f X / -Z, v = cy - f Y / -Z (pixels, v down)."""
    n, fa = _NEAR, _FAR
    return np.array([[2 * f / w, 0, 1 - 2 * cx / w, 0],
                     [0, 2 * f / h, 2 * cy / h - 1, 0],
                     [0, 0, -(fa + n) / (fa - n), -2 * fa * n / (fa - n)],
                     [0, 0, -1, 0]], np.float64)


def _mat_bytes(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(np.asarray(m, np.float32).T).tobytes()  # GLSL is column-major


class HeadRenderer:
    """Renders ``size`` (an int for square images or ``(width, height)``) images, ``ssaa`` x
    supersampled and area-downsampled.  Uploaded meshes of the last ``cache_size`` identities
    are kept (building one costs tens of milliseconds, rendering a few)."""

    def __init__(self, size: int | tuple = 128, ssaa: int = 2, cache_size: int = 512, detail: int = 1):
        w, h = (size, size) if np.isscalar(size) else size
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise UserError(f"image size {w}x{h} out of range: use 16..4096 pixels")
        if ssaa not in (1, 2, 3, 4):
            raise UserError(f"ssaa must be 1, 2, 3 or 4, got {ssaa}")
        self.width, self.height, self.ssaa, self.detail = int(w), int(h), int(ssaa), int(detail)
        self.cache_size = cache_size
        self.ctx = _context()
        self.prog = self.ctx.program(vertex_shader=_VS % {"n": _N_MAT, "sclera": MATERIALS["sclera"],
                                                               "lens": MATERIALS["lens"], "skin": MATERIALS["skin"],
                                                               "lips": MATERIALS["lips"]},
                                     fragment_shader=_FS)
        self.prog["ir_refl"].value = tuple(float(v) for v in _IR_REFL)
        self.prog["shine"].value = tuple(float(v) for v in _SHINE)
        self.bg_prog = self.ctx.program(vertex_shader=_BG_VS, fragment_shader=_BG_FS)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
        self.bg_vao = self.ctx.vertex_array(self.bg_prog, [(self.ctx.buffer(quad.tobytes()), "2f", "in_xy")])
        ss = (self.width * self.ssaa, self.height * self.ssaa)
        self.fbo = self.ctx.framebuffer(color_attachments=[self.ctx.renderbuffer(ss, 4)],
                                        depth_attachment=self.ctx.depth_renderbuffer(ss))
        self.bg_tex = self.ctx.texture((self.width, self.height), 3)
        self.bg_tex.filter = (self._gl().LINEAR, self._gl().LINEAR)
        self._meshes: OrderedDict[tuple, tuple] = OrderedDict()

    @staticmethod
    def _gl():
        return require("moderngl", "synth", "the synthetic head renderer")

    # --- mesh cache ------------------------------------------------------------------------------
    def mesh(self, identity: HeadIdentity) -> tuple[HeadMesh, list]:
        key = (self.detail, identity.cache_key())
        hit = self._meshes.get(key)
        if hit is not None:
            self._meshes.move_to_end(key)
            return hit
        m = build_head(identity, self.detail)
        vaos = []
        for verts, idx in ((m.opaque, m.opaque_idx), (m.transparent, m.transparent_idx)):
            if len(idx) == 0:
                vaos.append(None)
                continue
            vbo, ibo = self.ctx.buffer(verts.tobytes()), self.ctx.buffer(idx.tobytes())
            vaos.append((self.ctx.vertex_array(self.prog, [(vbo, "3f 3f 4f 1f", "in_pos", "in_nrm", "in_col",
                                                            "in_mat")], ibo), vbo, ibo))
        self._meshes[key] = (m, vaos)
        while len(self._meshes) > self.cache_size:
            _, (_, old) = self._meshes.popitem(last=False)
            for item in old:
                if item is not None:
                    for obj in item:
                        obj.release()
        return self._meshes[key]

    # --- camera ----------------------------------------------------------------------------------
    def camera(self, mesh: HeadMesh, scene: SceneParams) -> tuple[float, float, float, np.ndarray]:
        """(f, cx, cy, head pivot in the camera frame) for the output image size."""
        c = scene.camera
        if not (1.0 <= c.fov_deg <= 170.0):
            raise UserError(f"camera fov_deg={c.fov_deg} out of range (1..170 degrees)")
        if not (0.02 <= c.fill <= 3.0):
            raise UserError(f"camera fill={c.fill} out of range (0.02..3, head height / image height)")
        W, H = self.width, self.height
        f = (W / 2.0) / np.tan(np.radians(c.fov_deg) / 2.0)
        cx = W / 2.0 + c.pp_offset[0] * W
        cy = H / 2.0 + c.pp_offset[1] * H
        head_h = (mesh.top_y - mesh.chin_y)
        dist = f * head_h / (c.fill * H)
        t = np.array([c.head_offset[0], c.head_offset[1], c.head_offset[2] - dist], np.float64)
        return f, cx, cy, t

    # --- render ----------------------------------------------------------------------------------
    def render(self, identity: HeadIdentity, R, scene: SceneParams | None = None,
               pose: str = "crop") -> RenderResult:
        """Render ``identity`` at ``R``.  ``pose="crop"`` (default): ``R`` is the pose the face
        crop shows, the training label (``result.R_crop == R``; the camera-axes pose
        ``result.R`` is solved for); ``pose="camera"``: ``R`` is relative to the camera axes
        (``result.R == R``)."""
        R = np.asarray(R, np.float64)
        if R.shape != (3, 3) or not geometry.is_rotation(R, atol=1e-4):
            raise UserError("R must be a 3x3 rotation matrix (orthonormal, det +1) in the edgepose convention")
        if pose not in ("camera", "crop"):
            raise UserError(f"pose must be 'camera' or 'crop', got {pose!r}")
        scene = scene or SceneParams()
        mesh, vaos = self.mesh(identity)
        f, cx, cy, t = self.camera(mesh, scene)
        K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
        if pose == "crop":
            if any(scene.camera.head_offset):
                R = self._camera_pose_for_crop(mesh, R, t, K)
            else:
                # put the crop centre (not the skull centre) on the optical axis: then the crop's
                # ray IS the axis and the camera-axes pose equals the crop pose
                t = self._crop_center_on_axis(mesh, geometry.camera_frame(R), t, K)
        s, W, H = self.ssaa, self.width, self.height
        ctx, prog = self.ctx, self.prog
        gl = self._gl()
        R3 = geometry.camera_frame(R)
        prog["proj"].write(_mat_bytes(_projection(f * s, cx * s, cy * s, W * s, H * s)))
        prog["rot"].write(_mat_bytes(R3))
        prog["trans"].value = tuple(float(v) for v in t)
        L = scene.light
        ld = np.asarray(L.direction, np.float64)
        ld = ld / max(np.linalg.norm(ld), 1e-9)
        prog["light_dir"].value = tuple(float(v) for v in ld)
        prog["light_col"].value = tuple(float(c_) * L.intensity for c_ in L.color)
        prog["ambient"].value = tuple(float(v) for v in L.ambient)
        prog["exposure"].value = float(L.exposure)
        bu = np.cross(ld, [0.0, 1.0, 0.0] if abs(ld[1]) < 0.9 else [1.0, 0.0, 0.0])
        bu /= np.linalg.norm(bu)
        prog["band"].value = tuple(float(v) for v in L.shadow_band)
        prog["band_u"].value = tuple(float(v) for v in bu)
        prog["band_v"].value = tuple(float(v) for v in np.cross(ld, bu))
        prog["head_c"].value = tuple(float(v) for v in t)
        prog["ir"].value = int(scene.ir)
        prog["bright_pupil"].value = int(scene.ir_bright_pupil)
        prog["ir_pos"].value = tuple(float(v) for v in scene.ir_offset)
        prog["ir_gain"].value = float((np.linalg.norm(t) - 0.1) ** 2 * 0.9)  # irradiance ~0.9 on the face

        bg = make_background(scene.background, W, H, np.random.default_rng(scene.background_seed))
        if scene.ir:
            g = (bg.astype(np.float32) @ np.float32([0.3, 0.59, 0.11])) * 0.45
            bg = np.repeat(g[..., None], 3, 2).astype(np.uint8)
        self.bg_tex.write(np.ascontiguousarray(bg).tobytes())

        self.fbo.use()
        ctx.viewport = (0, 0, W * s, H * s)
        ctx.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        ctx.disable(gl.DEPTH_TEST | gl.BLEND | gl.CULL_FACE)
        self.bg_tex.use(0)
        self.bg_vao.render(gl.TRIANGLE_STRIP)
        ctx.enable(gl.DEPTH_TEST | gl.CULL_FACE)  # meshes are wound outward; thin parts are two-sided
        vaos[0][0].render(gl.TRIANGLES)
        if vaos[1] is not None:
            ctx.enable(gl.BLEND)
            ctx.blend_func = gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA
            self.fbo.depth_mask = False  # lenses never occlude key points or each other
            vaos[1][0].render(gl.TRIANGLES)
            self.fbo.depth_mask = True
            ctx.disable(gl.BLEND)
        ctx.disable(gl.CULL_FACE)
        raw = np.frombuffer(self.fbo.read(components=3, alignment=1), np.uint8).reshape(H * s, W * s, 3)
        img = _finish(raw[::-1], s, scene)

        kps, vis = self._keypoints(mesh, R3, t, f, cx, cy)
        box = _face_box(mesh, R3, t, K)
        cuv = tuple(float(v) for v in _project(t[None], f, cx, cy)[0])
        # R_crop: undo the rotation of the crop centre's viewing ray, which the runtime's
        # perspective_correction re-applies (same centre rule: preprocess.crop_box)
        R_crop = R @ geometry.perspective_correction(np.eye(3), K, self.crop_center(box)).T
        return RenderResult(image=img, R=R.copy(), R_crop=R_crop, box=box, keypoints=kps, visible=vis, K=K,
                            center_uv=cuv, identity_seed=int(identity.seed), scene=scene)

    def _crop_center_on_axis(self, mesh: HeadMesh, R3, t, K, iters: int = 8) -> np.ndarray:
        """Translate the head (x, y) so the crop centre of its face box lands on the principal
        point.  The box centre moves almost linearly with the translation: secant steps on each
        axis (0.05 ms each) reach 1e-6 px in a handful of iterations."""
        t = np.array(t, np.float64)
        f, cx, cy = K[0, 0], K[0, 2], K[1, 2]
        gain = None  # d(box centre px) / d(translation m), per axis (u, v)
        prev = None
        for _ in range(iters):
            p = mesh.face_points @ np.asarray(R3).T + t
            uv = _project(p, f, cx, cy)
            c = self.crop_center((uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()))
            err = np.array([c[0] - cx, c[1] - cy])
            if np.abs(err).max() < 1e-6:
                break
            if gain is None:  # pinhole estimate at the face's mean depth (v runs down, y up)
                z = float(-p[:, 2].mean())
                gain = np.array([f / z, -f / z])
            elif prev is not None:
                step_t, step_err = prev
                ok = np.abs(step_t) > 1e-12
                gain = np.where(ok, (err - step_err) / np.where(ok, step_t, 1.0), gain)
            dt = -err / gain
            t[:2] += dt
            prev = (dt, err)
        return t

    def _camera_pose_for_crop(self, mesh: HeadMesh, R_crop, t, K, iters: int = 12) -> np.ndarray:
        """The camera-axes pose whose crop (ray through its own box centre) shows ``R_crop``.

        The box centre depends on the pose only weakly, so the fixed point
        R = R_crop @ M(centre(R)) (M: the ray rotation undone by perspective_correction)
        converges in a few steps."""
        R = R_crop
        for _ in range(iters):
            M = geometry.perspective_correction(np.eye(3), K, self.crop_center(_face_box(mesh, R.T, t, K)))
            R_new = R_crop @ M
            done = np.abs(R_new - R).max() < 1e-9
            R = R_new
            if done:
                break
        return R

    @staticmethod
    def crop_center(box) -> tuple[float, float]:
        """The crop centre the runtime corrects perspective with (default ``CropPolicy``)."""
        from ..preprocess import CropPolicy, crop_box

        cx, cy, _ = crop_box(box, CropPolicy())
        return float(cx), float(cy)

    def _depth_window(self, x: int, y: int) -> np.ndarray:
        """Depth buffer values in the 3x3 window around supersampled pixel (x, y) (y down)."""
        Ws, Hs = self.width * self.ssaa, self.height * self.ssaa
        x0, x1 = max(x - 1, 0), min(x + 2, Ws)
        y0, y1 = max(y - 1, 0), min(y + 2, Hs)
        # GL rows run bottom-up
        vp = (x0, Hs - y1, x1 - x0, y1 - y0)
        raw = self.fbo.read(viewport=vp, components=1, attachment=-1, dtype="f4", alignment=1)
        return np.frombuffer(raw, np.float32)

    def _keypoints(self, mesh: HeadMesh, R3, t, f, cx, cy):
        p = mesh.keypoints @ R3.T + t
        uv = _project(p, f, cx, cy)
        W, H, s = self.width, self.height, self.ssaa
        n_cam = mesh.keypoint_normals @ R3.T
        facing = (n_cam * -p).sum(-1) > 0
        inside = (uv >= 0).all(-1) & (uv[:, 0] < W) & (uv[:, 1] < H)
        vis = facing & inside
        A = -(_FAR + _NEAR) / (_FAR - _NEAR)
        B = -2 * _FAR * _NEAR / (_FAR - _NEAR)
        for k in np.flatnonzero(vis):
            x, y = int(uv[k, 0] * s), int(uv[k, 1] * s)
            z_ndc = 2.0 * float(self._depth_window(x, y).max()) - 1.0
            z_buf = -B / (z_ndc + A)  # linear depth (negative, camera looks down -z)
            vis[k] = z_buf <= p[k, 2] + 0.006  # nothing more than 6 mm in front of the point
        return uv, vis


def _face_box(mesh: HeadMesh, R3, t, K) -> tuple[float, float, float, float]:
    """Bounding box of the projected face-region points (see :attr:`HeadMesh.face_points`)."""
    fp = _project(mesh.face_points @ np.asarray(R3).T + t, K[0, 0], K[0, 2], K[1, 2])
    return float(fp[:, 0].min()), float(fp[:, 1].min()), float(fp[:, 0].max()), float(fp[:, 1].max())


def _project(p: np.ndarray, f: float, cx: float, cy: float) -> np.ndarray:
    z = -p[:, 2]
    return np.stack([cx + f * p[:, 0] / z, cy - f * p[:, 1] / z], -1)


def _finish(rgb: np.ndarray, s: int, scene: SceneParams) -> np.ndarray:
    """Downsample, blur, add sensor noise; BGR uint8 (or GRAY for NIR)."""
    import cv2

    if s > 1:
        rgb = cv2.resize(rgb, (rgb.shape[1] // s, rgb.shape[0] // s), interpolation=cv2.INTER_AREA)
    img = rgb[..., 0].copy() if scene.ir else rgb[..., ::-1].copy()
    if scene.blur_sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), scene.blur_sigma)
    if scene.noise_sigma > 0:
        rng = np.random.default_rng(scene.noise_seed)
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        noise *= np.float32(scene.noise_sigma)
        noise += img
        img = np.clip(noise, 0, 255, out=noise).astype(np.uint8)
    return np.ascontiguousarray(img)


_CTX = None


def _context():
    """The process's GL context (EGL, created lazily, once per process).  A forked child of a
    process that already had one gets a clear error (see below) instead of a hang."""
    global _CTX
    if _CTX is not None and _CTX[0] == os.getpid():
        return _CTX[1]
    if _CTX is not None and os.environ.get("LP_NUM_THREADS") != "0":
        # EGL drivers are not fork-safe: llvmpipe's rasteriser threads do not exist in the child
        # and any GL call there (even creating a new context) hangs.  Fail loudly instead.
        raise UserError(
            f"the synthetic renderer's GL context was created in process {_CTX[0]}, which then forked "
            f"(this is process {os.getpid()}); EGL cannot be used after fork. Use "
            "DataLoader(..., multiprocessing_context='spawn') (or 'forkserver'), or do not render in the "
            "parent before starting workers, or set LP_NUM_THREADS=0 (single-threaded llvmpipe, fork-safe)")
    mgl = require("moderngl", "synth", "the synthetic head renderer")
    backend = os.environ.get("EDGEPOSE_GL_BACKEND", "egl")
    try:
        ctx = mgl.create_standalone_context(backend=backend) if backend else mgl.create_standalone_context()
    except Exception as exc:  # the driver's own message is the useful part
        raise UserError(f"cannot create an off-screen OpenGL context (backend {backend!r}): {exc}. Install EGL "
                        "and Mesa (apt: libegl1 libegl-mesa0 libgl1-mesa-dri; see scripts/setup.sh) or set "
                        "EDGEPOSE_GL_BACKEND to another moderngl backend") from None
    log.debug("GL context: %s", ctx.info.get("GL_RENDERER"))
    _CTX = (os.getpid(), ctx)
    return ctx


_RENDERERS: dict = {}


def get_renderer(size: int | tuple = 128, ssaa: int = 2) -> HeadRenderer:
    """The process-wide renderer for ``size`` (created once, reused)."""
    key = (os.getpid(), size if np.isscalar(size) else tuple(size), ssaa)
    if key not in _RENDERERS:
        _RENDERERS[key] = HeadRenderer(size, ssaa)
    return _RENDERERS[key]


def render(identity: HeadIdentity | int, R, scene: SceneParams | None = None, size: int | tuple = 128,
           ssaa: int = 2, pose: str = "crop") -> RenderResult:
    """Render ``identity`` (a :class:`HeadIdentity` or an identity seed) at pose ``R``
    (``pose="crop"``: what the face crop shows, ``result.R_crop == R``; ``"camera"``: relative to
    the camera axes, ``result.R == R``)."""
    if not isinstance(identity, HeadIdentity):
        identity = HeadIdentity.from_seed(int(identity))
    return get_renderer(size, ssaa).render(identity, R, scene, pose)


def render_positive(R, other_identity: HeadIdentity | int, scene: SceneParams | None = None,
                    size: int | tuple = 128,
                    ssaa: int = 2) -> RenderResult:
    """A CLERF positive: another person whose face crop shows exactly the pose ``R`` (a crop label
    such as an anchor's ``Sample.R``): ``result.R_crop == R == result.to_sample().R``.  Any
    rotation works; no roll-last factorisation is needed because the renderer takes the full R."""
    return render(other_identity, R, scene, size, ssaa, pose="crop")
