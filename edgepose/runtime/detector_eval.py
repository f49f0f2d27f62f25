"""Face detectors measured against exact ground truth (docs/results/detectors.md).

    edgepose-bench detectors --drive DIR [--drive DIR2] --no-face VIDEO \\
        --detector centerface=~/.cache/edgepose/models/centerface.onnx --detector haar \\
        --detector yunet=../shared/data/detectors/yunet/yunet_s_640_640.onnx --json out.json

Three frame sets, each with its truth:

* **sweep**: the synthetic engine renders test-split identities at a grid of exact poses (|yaw|
  0-90 deg in 5 deg steps, both sides; pitch -45..45 in 15 deg steps), 640x480, with the demo
  drive's camera (below and beside the face, cabin background), colour and NIR;
* **drive**: the frames of ``edgepose synth video`` / the demo's synthetic drive (``--drive``: a
  folder holding ``driver.mp4`` and ``driver.poses.jsonl``), scored per glance zone;
* **no face**: frames of a real video without faces (every box there is a false positive).

A face counts as found when a box's centre lies inside the true face box and their IoU is at
least ``MATCH_IOU`` (the detectors draw boxes of different extent, so the threshold is loose);
every other box is a false positive.  Each detector runs alone on every frame (no tracker), with
one ONNX Runtime thread; ms/frame is the mean wall time of ``detect`` over all frames.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .detection import iou_matrix

MATCH_IOU = 0.25
YAW_BINS = [(0, 15), (15, 30), (30, 45), (45, 60), (60, 75), (75, 90)]
PITCHES = (-45, -30, -15, 0, 15, 30, 45)


def match(dets, gt_box) -> tuple[bool, int]:
    """(face found, number of false-positive boxes) for one frame with one true face (or none)."""
    if not dets:
        return False, 0
    boxes = np.array([d.box for d in dets], np.float64)
    if gt_box is None:
        return False, len(dets)
    g = np.asarray(gt_box, np.float64)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    inside = (cx >= g[0]) & (cx <= g[2]) & (cy >= g[1]) & (cy <= g[3])
    ok = inside & (iou_matrix(boxes, g[None])[:, 0] >= MATCH_IOU)
    found = bool(ok.any())
    return found, len(dets) - int(found)


def sweep_frames(identities: int = 2, size=(640, 480)):
    """(image, pitch, yaw, box) over the pose grid; identity k alternates colour / NIR."""
    from .. import geometry
    from ..synth.identity import HeadIdentity, identity_seeds
    from ..synth.renderer import get_renderer
    from ..synth.scene import CameraParams, LightParams, SceneParams

    renderer = get_renderer(tuple(size), 2)
    cam = CameraParams(fov_deg=62.0, fill=0.36, pp_offset=(0.0, 0.0), head_offset=(0.07, 0.09, 0.0))
    light = LightParams(direction=(-0.6, 0.5, 0.6), intensity=1.3, ambient=(0.22, 0.22, 0.24))
    yaws = np.arange(-87.5, 90.0, 5.0)
    for k, seed in enumerate(identity_seeds("test", identities, offset=100)):
        ident = HeadIdentity.from_seed(int(seed), accessories=0.5)
        ir = k % 2 == 1
        for pitch in PITCHES:
            for yaw in yaws:
                scene = SceneParams(camera=cam, light=light, ir=ir, background="cabin", background_seed=int(seed),
                                    noise_sigma=5.0 if ir else 2.0, noise_seed=int(seed) + int(yaw * 10) + pitch)
                res = renderer.render(ident, geometry.euler_to_matrix([pitch, yaw, 0.0]), scene, pose="camera")
                yield res.image, float(pitch), float(yaw), res.box


def cached_sweep(identities: int, folder: Path | None) -> list:
    """The sweep, rendered once into ``folder`` (PNG + labels.json) and read back on later runs."""
    import cv2

    if folder is None:
        return list(sweep_frames(identities))
    labels = folder / f"sweep-{identities}.json"
    if labels.is_file():
        recs = json.loads(labels.read_text())
        return [(cv2.imread(str(folder / r["file"]), cv2.IMREAD_UNCHANGED), r["pitch"], r["yaw"], r["box"])
                for r in recs]
    folder.mkdir(parents=True, exist_ok=True)
    out, recs = [], []
    for i, (img, pitch, yaw, box) in enumerate(sweep_frames(identities)):
        name = f"sweep-{identities}-{i:04d}.png"
        cv2.imwrite(str(folder / name), img)
        out.append((img, pitch, yaw, box))
        recs.append({"file": name, "pitch": pitch, "yaw": yaw, "box": [float(v) for v in box]})
    labels.write_text(json.dumps(recs))
    return out


def drive_frames(folder: Path):
    """(image, phase, box) of a synthetic drive folder (driver.mp4 + driver.poses.jsonl)."""
    import cv2

    truth = [json.loads(line) for line in (folder / "driver.poses.jsonl").read_text().splitlines()]
    cap = cv2.VideoCapture(str(folder / "driver.mp4"))
    for rec in truth:
        ok, frame = cap.read()
        if not ok:
            break
        yield frame, rec["phase"], rec["box"]
    cap.release()


def video_frames(path: Path, max_frames: int, step: int = 1):
    import cv2

    cap = cv2.VideoCapture(str(path))
    i = n = 0
    while n < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            n += 1
            yield frame
        i += 1
    cap.release()


class _Scorer:
    def __init__(self):
        self.ms: list[float] = []
        self.hits: dict[str, list[bool]] = {}
        self.fp = {"face_frames": 0, "face_fp": 0, "noface_frames": 0, "noface_fp": 0}

    def run(self, det, frame) -> list:
        t0 = time.perf_counter()
        out = det.detect(frame)
        self.ms.append((time.perf_counter() - t0) * 1e3)
        return out

    def add(self, key: str, found: bool) -> None:
        self.hits.setdefault(key, []).append(found)

    def summary(self) -> dict:
        rec = {k: {"frames": len(v), "recall": float(np.mean(v))} for k, v in sorted(self.hits.items())}
        f = self.fp
        return {"ms_per_frame": float(np.mean(self.ms)), "ms_p50": float(np.median(self.ms)), "recall": rec,
                "fp_per_face_frame": f["face_fp"] / max(1, f["face_frames"]),
                "fp_per_noface_frame": f["noface_fp"] / max(1, f["noface_frames"]), **f}


def evaluate(detectors: dict, sweep: list, drives: dict[str, list], noface: list, json_out: Path | None = None) -> dict:
    from ..synth.video import glance_zone

    results = {}
    for name, det in detectors.items():
        s = _Scorer()
        for img, pitch, yaw, box in sweep:
            found, fp = match(s.run(det, img), box)
            s.fp["face_frames"] += 1
            s.fp["face_fp"] += fp
            if abs(pitch) <= 15:
                b = next(f"{lo}-{hi}" for lo, hi in YAW_BINS if lo <= abs(yaw) < hi)
                s.add(f"sweep yaw {b}", found)
            if abs(yaw) <= 30:
                s.add(f"sweep pitch {pitch:+.0f}", found)
        for dname, frames in drives.items():
            for img, phase, box in frames:
                found, fp = match(s.run(det, img), box)
                s.fp["face_frames"] += 1
                s.fp["face_fp"] += fp
                s.add(f"{dname} all", found)
                s.add(f"{dname} {glance_zone(phase)}", found)
        for img in noface:
            _, fp = match(s.run(det, img), None)
            s.fp["noface_frames"] += 1
            s.fp["noface_fp"] += fp
        results[name] = s.summary()
        print(f"[eval] {name}: {results[name]['ms_per_frame']:.1f} ms/frame", flush=True)
        if json_out is not None:  # after every detector: a long run that is stopped keeps what it measured
            json_out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def interleaved_timing(detectors: dict, frames: list) -> dict[str, dict]:
    """ms per ``detect`` with the detectors taking turns on each frame, so a change of machine
    load hits all of them alike (median and p90)."""
    ms: dict[str, list[float]] = {k: [] for k in detectors}
    for f in frames:
        for k, d in detectors.items():
            t0 = time.perf_counter()
            d.detect(f)
            ms[k].append((time.perf_counter() - t0) * 1e3)
    return {k: {"ms_p50": float(np.median(v)), "ms_p90": float(np.percentile(v, 90))} for k, v in ms.items()}


def _open(spec: str):
    """``NAME`` or ``NAME=MODEL`` or ``NAME=MODEL@SIZE`` -> (label, detector)."""
    from .detectors import create_detector

    name, _, rest = spec.partition("=")
    model, _, size = rest.partition("@")
    family = name.split(":")[0]
    kw = {} if family == "haar" else {"intra_op_threads": 1}
    if size:
        kw["input_size"] = int(size)
    return name, create_detector(family, model or None, **kw)


def markdown(results: dict) -> str:
    keys = sorted({k for r in results.values() for k in r["recall"]},
                  key=lambda k: (k.split()[0] != "sweep", k))
    names = list(results)
    lines = ["| frames | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k in keys:
        n = next(r["recall"][k]["frames"] for r in results.values() if k in r["recall"])
        lines.append(f"| {k} ({n}) | " + " | ".join(
            f"{100 * results[m]['recall'][k]['recall']:.1f}" if k in results[m]["recall"] else "-" for m in names) + " |")
    lines.append("| false boxes / face frame | " + " | ".join(f"{results[m]['fp_per_face_frame']:.3f}" for m in names) + " |")
    lines.append("| false boxes / no-face frame | " + " | ".join(f"{results[m]['fp_per_noface_frame']:.3f}" for m in names) + " |")
    lines.append("| ms/frame (mean) | " + " | ".join(f"{results[m]['ms_per_frame']:.1f}" for m in names) + " |")
    return "\n".join(lines)


def open_detectors(specs: list[str]) -> dict:
    """``NAME[=MODEL[@SIZE]]`` specs -> {label: detector}."""
    return dict(_open(s) for s in specs)


def drive_timing(specs: list[str], drives: list[str], step: int) -> dict[str, dict]:
    """:func:`interleaved_timing` of the detectors on every ``step``-th frame of the drive folders."""
    frames = [f for d in drives for f, _, _ in drive_frames(Path(d))][::step]
    return interleaved_timing(open_detectors(specs), frames)


def run_eval(specs: list[str], drives: list[str], no_face: str | None = None, no_face_frames: int = 150,
             identities: int = 2, cache: str | None = None, json_out: str | None = None) -> dict:
    """Render / read the three frame sets and score every detector on them (see the module doc)."""
    t0 = time.perf_counter()
    sweep = cached_sweep(identities, Path(cache) if cache else None) if identities > 0 else []
    drive_sets = {Path(d).name: list(drive_frames(Path(d))) for d in drives}
    noface = list(video_frames(Path(no_face), no_face_frames, step=2)) if no_face else []
    print(f"[eval] {len(sweep)} sweep, {sum(map(len, drive_sets.values()))} drive, {len(noface)} no-face frames "
          f"({time.perf_counter() - t0:.0f} s to render/read)", flush=True)
    return evaluate(open_detectors(specs), sweep, drive_sets, noface, Path(json_out) if json_out else None)
