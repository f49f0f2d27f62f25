"""A driver-like synthetic video with per-frame ground truth (``edgepose synth video``).

One synthetic driver in a cabin, seen by a camera below and beside the face (so the head is OFF
the optical axis, as in a real car), runs through a scripted drive: road-forward with small
natural motion, mirror glances (left, rear-view, right) and a long distraction glance down to the
centre console.  Outputs, next to ``OUT.mp4``:

* ``OUT.poses.jsonl`` -- one JSON object per frame: ``frame``, ``t``, ``phase``, ``pitch/yaw/roll``
  and ``R`` (camera axes: what the runtime reports after perspective correction), ``R_crop``
  (relative to the viewing ray through the box centre: what a face crop shows), ``box``,
  ``keypoints``, ``visible``;
* ``OUT.poses.csv`` -- the same per-frame pose as CSV (frame, t, phase, pitch, yaw, roll, r00..r22);
* ``OUT.json`` -- intrinsics ``K``, image size, fps, identity, the neutral (road-forward) pose;
* ``OUT.mount.yaml`` -- that neutral pose as an ``edgepose dms --mount`` file (``road_pose_deg``).

The mp4 is encoded with PyAV (libx264, yuv420p).  Files are written under temporary names and
renamed at the end, also on Ctrl-C, so the frames rendered so far are kept.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import numpy as np

from .. import geometry
from ..errors import UserError, require
from .identity import HeadIdentity, identity_seeds
from .renderer import get_renderer
from .scene import CameraParams, LightParams, SceneParams

__all__ = ["DRIVE_SCRIPT", "glance_zone", "pose_track", "render_video"]

log = logging.getLogger(__name__)

#: (phase, seconds to move there, seconds held, (pitch, yaw, roll) relative to road-forward).
#: +yaw = the nose toward image-left = the driver's right (the camera faces the driver).
DRIVE_SCRIPT = [  # one pass = 10.0 s; the distraction is a >= 3 s off-road glance (Euro NCAP 2023)
    ("road", 0.5, 0.8, (0.0, 0.0, 0.0)),
    ("left_mirror", 0.35, 0.5, (-6.0, -50.0, -3.0)),
    ("road", 0.35, 0.7, (0.0, 0.0, 0.0)),
    ("rear_mirror", 0.35, 0.4, (9.0, 28.0, 4.0)),
    ("road", 0.35, 0.5, (0.0, 0.0, 0.0)),
    ("distraction", 0.4, 3.2, (-38.0, 24.0, 8.0)),
    ("road", 0.4, 0.5, (0.0, 0.0, 0.0)),
    ("right_mirror", 0.35, 0.35, (-5.0, 62.0, 5.0)),
]

#: Road-forward pose in camera axes for the default mount (camera low on the steering column,
#: looking up at the driver): the driver appears to look slightly down.
NEUTRAL = (-8.0, 0.0, 0.0)


def glance_zone(phase: str) -> str:
    """Glance zone of a drive-script phase: road, mirrors (left, rear-view, right) or distraction
    (the script's distraction is the glance down to the centre console)."""
    return "mirrors" if phase.endswith("mirror") else phase


def _ease(t):
    return t * t * (3 - 2 * t)


def pose_track(n_frames: int, fps: float, seed: int = 0, script=DRIVE_SCRIPT, neutral=NEUTRAL):
    """(pitch, yaw, roll) per frame (degrees, camera axes) and the phase name of each frame; the
    script repeats when the video is longer than one pass."""
    rng = np.random.default_rng([seed, 0x71DE0])
    t = np.arange(n_frames) / fps
    period = sum(m + h for _, m, h, _ in script)
    pyr = np.zeros((n_frames, 3))
    phases = []
    for k, tk in enumerate(t):
        # the first pass starts at rest in the first pose; later passes come from the last one
        tau, prev = tk % period, np.array(script[-1][3] if tk >= period else script[0][3], float)
        for name, move, hold, target in script:
            target = np.array(target, float)
            if tau < move + hold:
                a = _ease(min(tau / move, 1.0)) if move > 0 else 1.0
                pyr[k] = prev + a * (target - prev)
                phases.append(name)
                break
            tau -= move + hold
            prev = target
    # small natural head motion: smoothed random walk, a few degrees
    wob = np.cumsum(rng.normal(0, 0.35, (n_frames, 3)), 0)
    kernel = np.hanning(max(3, int(fps)))
    kernel /= kernel.sum()
    L = len(kernel)
    wob = np.stack([np.convolve(np.pad(wob[:, j], L, mode="edge"), kernel, mode="same")[L:L + n_frames]
                    for j in range(3)], 1)
    wob -= np.linspace(0, 1, n_frames)[:, None] * (wob[-1] - wob[0]) + wob[0]
    pyr += np.clip(wob, -4, 4) * [0.6, 1.0, 0.4] + np.array(neutral, float)
    return pyr, phases


def render_video(out: str | Path, seconds: float = 10.0, fps: float = 30.0, seed: int = 0,
                 size: tuple[int, int] = (640, 480), ir: bool = False, identity: int | None = None,
                 progress: bool = True) -> dict:
    """Render the scripted drive to ``out`` (.mp4) plus its ground truth; returns the sidecar dict."""
    av = require("av", "video", "writing the synthetic video")
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise UserError(f"--out must end in .mp4, got {out}")
    if not (0 < seconds <= 3600) or not (1 <= fps <= 240):
        raise UserError(f"seconds must be in (0, 3600] and fps in [1, 240]; got {seconds} s at {fps} fps")
    w, h = int(size[0]), int(size[1])
    if w % 2 or h % 2:
        raise UserError(f"video size {w}x{h}: width and height must be even for yuv420p")
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0xD1])
    ident_seed = int(identity if identity is not None else rng.choice(identity_seeds("test", 1000)))
    ident = HeadIdentity.from_seed(ident_seed, accessories=0.5)
    cam = CameraParams(fov_deg=62.0, fill=0.36, pp_offset=(0.0, 0.0), head_offset=(0.07, 0.09, 0.0))
    light = LightParams(direction=(-0.6, 0.5, 0.6), intensity=1.3, ambient=(0.22, 0.22, 0.24))
    n = max(1, int(round(seconds * fps)))
    pyr, phases = pose_track(n, fps, seed)
    renderer = get_renderer((w, h), 2)
    base = SceneParams(camera=cam, light=light, ir=ir, background="cabin",
                       background_seed=int(rng.integers(2 ** 31)), noise_sigma=2.0 if not ir else 5.0)

    tmp_mp4 = out.with_name(out.stem + ".partial.mp4")
    jsonl, csv_path, side = (out.with_suffix(".poses.jsonl"), out.with_suffix(".poses.csv"), out.with_suffix(".json"))
    tmp_jsonl, tmp_csv = jsonl.with_name(jsonl.name + ".partial"), csv_path.with_name(csv_path.name + ".partial")
    container = av.open(str(tmp_mp4), mode="w")
    stream = container.add_stream("libx264", rate=int(round(fps)))
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.options = {"crf": "18", "preset": "veryfast"}
    K = None
    done = 0
    try:
        from tqdm import tqdm

        with tmp_jsonl.open("w") as fj, tmp_csv.open("w", newline="") as fc:
            wc = csv.writer(fc)
            wc.writerow(["frame", "t", "phase", "pitch", "yaw", "roll"] + [f"r{i}{j}" for i in range(3) for j in range(3)])
            for k in tqdm(range(n), desc="synth video", unit="frame", disable=not progress):
                R = geometry.euler_to_matrix(pyr[k])
                scene = SceneParams(**{**base.__dict__, "noise_seed": int(seed * 1_000_003 + k)})
                res = renderer.render(ident, R, scene, pose="camera")  # the script is in camera axes
                K = res.K
                img = res.image if res.image.ndim == 3 else np.repeat(res.image[..., None], 3, 2)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                    container.mux(packet)
                e = geometry.matrix_to_euler(R)
                rec = {"frame": k, "t": round(k / fps, 6), "phase": phases[k],
                       "pitch": round(float(e[0]), 4), "yaw": round(float(e[1]), 4), "roll": round(float(e[2]), 4),
                       "R": [round(float(v), 8) for v in R.ravel()],
                       "R_crop": [round(float(v), 8) for v in res.R_crop.ravel()],
                       "box": [round(float(v), 2) for v in res.box],
                       "keypoints": [[round(float(u), 2), round(float(v), 2)] for u, v in res.keypoints],
                       "visible": [bool(v) for v in res.visible]}
                fj.write(json.dumps(rec) + "\n")
                wc.writerow([k, f"{k / fps:.6f}", phases[k]] + [f"{v:.4f}" for v in e] + [f"{v:.8f}" for v in R.ravel()])
                done += 1
    finally:
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        if done:
            os.replace(tmp_mp4, out)
            os.replace(tmp_jsonl, jsonl)
            os.replace(tmp_csv, csv_path)
        else:
            for p in (tmp_mp4, tmp_jsonl, tmp_csv):
                p.unlink(missing_ok=True)
    meta = {"video": out.name, "frames": done, "fps": fps, "width": w, "height": h, "seed": seed,
            "identity": ident_seed, "ir": ir, "K": None if K is None else K.tolist(),
            # the runtime's camera settings (edgepose.runtime CameraConfig.intrinsics = [fx, fy, cx, cy])
            "intrinsics": None if K is None else [K[0, 0], K[1, 1], K[0, 2], K[1, 2]], "hfov_deg": cam.fov_deg,
            "neutral_pyr": list(NEUTRAL), "poses": jsonl.name,
            "convention": "R: head pose relative to the camera axes (edgepose convention); R_crop: relative to the "
                          "viewing ray through the face-box centre; "
                          "geometry.perspective_correction(R_crop, K, box centre) = R",
            "script": [list(s[:3]) + [list(s[3])] for s in DRIVE_SCRIPT]}
    if done:
        tmp = side.with_name(side.name + ".partial")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, side)
        mount = out.with_suffix(".mount.yaml")
        mount.write_text("description: synthetic driver camera of `edgepose synth video` (road-forward pose)\n"
                         f"road_pose_deg: [{NEUTRAL[0]}, {NEUTRAL[1]}, {NEUTRAL[2]}]\n")
    log.info("wrote %s (%d frames) + %s", out, done, jsonl.name)
    return meta
