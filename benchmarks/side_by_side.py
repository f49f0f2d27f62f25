"""edgepose's per-frame stages beside MediaPipe Face Mesh (video mode), on the same decoded frames, in one process.

    OMP_NUM_THREADS=1 edgepose-bench side-by-side ../shared/data/videos/single_face.mp4 \
        --every 1,3,5 --rounds 5 --json side-by-side.json

Each clip is decoded once into memory by the pipeline's own reader (GStreamer -> BGR, with the
file's timestamps, as ``edgepose run`` decodes it); MediaPipe gets an RGB copy made before timing, so
neither side pays for decode or colour conversion.  Rows ("variants"):

* ``mediapipe``: the wheel's face-mesh graph (:mod:`edgepose.benchmarks.mediapipe_peer`): BlazeFace
  detection + 468 landmarks with its own ROI tracking; skipped with a reason when MediaPipe's runtime
  is not importable here;
* ``edgepose``: the processor that ``edgepose run`` builds (:func:`edgepose.pipelines.build_run`
  with :class:`RunOptions` filled as the command fills them), timed per ``FrameProcessor.process``:
  detect (per ``detector.every``) -> track -> pose -> perspective -> smoothing;
* ``edgepose every=N`` for each N of ``every``, and any ``--variant NAME KEY=VALUE ...``: the same
  build with more runtime overrides (``edgepose run --set``), so a new runtime option is benchmarked
  without a code change.

Rounds interleave the rows: each round runs every row over the whole clip from a fresh state (a new
MediaPipe graph run, ``FrameProcessor.new_scene``), the row order rotating per round, so machine
load hits all rows alike and the ratios hold on a shared CPU.  Per row: frames/s (frames / summed
wall time of the timed calls), p50 / p99 wall ms per frame, process CPU ms per frame (all threads;
CPU / wall shows how many cores a row used), edgepose's own mean ms per stage (``FrameResult.timings``),
faces per frame and frames with a face (first round), and, for edgepose rows, the agreement of their pose with MediaPipe's: the rigid fit of MediaPipe's
landmarks to the canonical face (:func:`edgepose.synth.profile.fit.fit_pose`, the profiler's fit)
against edgepose's crop pose ``R_raw`` (before perspective correction and smoothing; the landmark
fit is a weak-perspective, image-plane pose too), on the frames where both found the face.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["Variant", "decode_clip", "edgepose_variants", "run_side_by_side", "markdown"]

MEDIAPIPE = "mediapipe"


def _stderr(line: str) -> None:
    """Progress goes to stderr; stdout keeps the tables."""
    print(line, file=sys.stderr, flush=True)


@dataclass
class Variant:
    """One row: ``kind`` mediapipe or edgepose; ``overrides`` are runtime KEY=VALUE (edgepose rows)."""
    name: str
    kind: str
    overrides: list[str] = field(default_factory=list)
    every: int | None = None


@dataclass
class Clip:
    path: str
    bgr: list[np.ndarray]
    pts_ns: list[int]
    rgb: list[np.ndarray] | None = None

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.bgr[0].shape[:2]
        return w, h


def decode_clip(path: str, max_frames: int | None = None, rgb: bool = True) -> Clip:
    """All frames (up to ``max_frames``) of a file, decoded as ``edgepose run`` decodes them."""
    import cv2

    from ..errors import UserError
    from ..pipelines.builder import open_source
    from ..pipelines.reader import VideoSource

    spec = open_source(path)
    if not spec.is_file or spec.is_still:
        raise UserError(f"{path}: the side-by-side bench needs a video file (MediaPipe's video mode tracks "
                        f"across frames)")
    bgr, pts = [], []
    for frame in VideoSource(spec, max_reconnects=0):
        if frame.image.ndim != 3:
            raise UserError(f"{path}: decoded to {frame.image.shape}; the bench needs colour frames")
        bgr.append(frame.image)
        pts.append(int(frame.pts_ns))
        if max_frames is not None and len(bgr) >= max_frames:
            break
    if not bgr:
        raise UserError(f"{path}: no frame could be decoded")
    clip = Clip(str(path), bgr, pts)
    if rgb:
        clip.rgb = [np.ascontiguousarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in bgr]
    return clip


def edgepose_variants(every: Sequence[int] = (1,), extra: Sequence[Sequence[str]] = (),
                      with_mediapipe: bool = True) -> list[Variant]:
    """The rows: MediaPipe, edgepose as ``edgepose run`` defaults it (every=1), every=N, then
    ``extra`` (each ``[NAME, KEY=VALUE, ...]``)."""
    rows = [Variant(MEDIAPIPE, MEDIAPIPE)] if with_mediapipe else []
    for n in dict.fromkeys([1, *every]):  # every=1 is edgepose run's default: always measured, first
        rows.append(Variant("edgepose" if n == 1 else f"edgepose every={n}", "edgepose", every=n))
    for spec in extra:
        if not spec:
            continue
        name, overrides = spec[0], list(spec[1:])
        rows.append(Variant(f"edgepose {name}", "edgepose", overrides=overrides))
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        from ..errors import UserError

        raise UserError(f"two rows share a name ({', '.join(names)}); give each --variant its own NAME")
    return rows


class _EdgeposeRow:
    """The processor of ``edgepose run`` for one clip; ``step`` times nothing itself."""

    def __init__(self, v: Variant, clip: Clip, model, detector: str, detector_model, detector_size,
                 threads: int | None, overrides: Sequence[str]):
        from ..pipelines import RunOptions, build_run

        # exactly what `edgepose run CLIP` puts in RunOptions; --set overrides come last, as there
        options = RunOptions(source=clip.path, model=model, detector=detector, detector_model=detector_model,
                             detector_size=detector_size, every=v.every if v.every is not None else 1,
                             device="cpu", threads=threads, overrides=[*overrides, *v.overrides],
                             progress=False)
        self.run = build_run(options)
        self.processor = self.run.processor
        self.header = self.run.header

    def restart(self) -> None:
        self.processor.new_scene()

    def step(self, clip: Clip, i: int):
        return self.processor.process(clip.bgr[i], clip.pts_ns[i])

    def close(self) -> None:
        self.run.close()


class _MediaPipeRow:
    def __init__(self, max_faces: int):
        from .mediapipe_peer import MediaPipeFaceMesh

        self.mesh = MediaPipeFaceMesh(max_faces=max_faces)
        self.header = {"graph": "face_landmark_front_cpu (mp.solutions.face_mesh, video mode)",
                       "max_faces": max_faces}

    def restart(self) -> None:
        self.mesh.restart()

    def step(self, clip: Clip, i: int):
        return self.mesh.process(clip.rgb[i], clip.pts_ns[i] // 1000)

    def close(self) -> None:
        self.mesh.close()


def _time_pass(row, clip: Clip, frames: int, keep: list | None,
               stages: list | None = None) -> tuple[list[float], list[float]]:
    """One pass over the clip from a fresh state: wall and process-CPU ms of each ``step``; edgepose's
    own per-stage ms (``FrameResult.timings``) go to ``stages``."""
    row.restart()
    wall, cpu = [], []
    for i in range(frames):
        c0, t0 = time.process_time(), time.perf_counter()
        out = row.step(clip, i)
        t1, c1 = time.perf_counter(), time.process_time()
        wall.append((t1 - t0) * 1e3)
        cpu.append((c1 - c0) * 1e3)
        if keep is not None:
            keep.append(out)
        if stages is not None and getattr(out, "timings", None):
            stages.append(out.timings)
    return wall, cpu


def _faces(kind: str, out) -> int:
    return len(out) if kind == MEDIAPIPE else len(out.faces)


def _match_pose(mp_pts: list[np.ndarray], faces) -> tuple[np.ndarray, np.ndarray] | None:
    """(MediaPipe's fitted R, edgepose's R_raw) of one face both found, else None: the largest
    edgepose face with a valid pose whose box holds the centre of a MediaPipe face's landmarks."""
    from ..synth.profile.fit import fit_pose

    for pts in mp_pts:
        cx, cy = (pts[:, :2].min(0) + pts[:, :2].max(0)) / 2
        hits = [f for f in faces if f.valid and f.R_raw is not None
                and f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3]]
        if hits:
            f = max(hits, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            return fit_pose(pts).R, np.asarray(f.R_raw, np.float64)
    return None


def _agreement(mp_outs: list, ep_outs: list, width: int, height: int) -> dict | None:
    from .. import geometry
    from .mediapipe_peer import MediaPipeFaceMesh

    pairs = []
    for mp_faces, result in zip(mp_outs, ep_outs):
        if mp_faces and result.faces:
            m = _match_pose([MediaPipeFaceMesh.points(f, width, height) for f in mp_faces], result.faces)
            if m is not None:
                pairs.append(m)
    if not pairs:
        return None
    A = np.stack([p[0] for p in pairs])
    B = np.stack([p[1] for p in pairs])
    geo = geometry.geodesic_distance(A, B)
    d = np.abs(geometry.angle_diff(geometry.matrix_to_euler(A), geometry.matrix_to_euler(B)))
    return {"frames": len(pairs), "geodesic_median_deg": float(np.median(geo)),
            "geodesic_mean_deg": float(np.mean(geo)),
            "abs_diff_mean_deg": {"pitch": float(d[:, 0].mean()), "yaw": float(d[:, 1].mean()),
                                  "roll": float(d[:, 2].mean())}}


def _summary(wall: list[float], cpu: list[float], first: list, kind: str, stages: list[dict]) -> dict:
    faces = [_faces(kind, o) for o in first]
    s = {"frames_timed": len(wall), "fps": 1e3 * len(wall) / sum(wall), "ms_p50": float(np.percentile(wall, 50)),
         "ms_p99": float(np.percentile(wall, 99)), "ms_mean": float(np.mean(wall)),
         "cpu_ms_mean": float(np.mean(cpu)), "cores_used": float(sum(cpu) / sum(wall)),
         "faces_per_frame": float(np.mean(faces)), "frames_with_face": float(np.mean([n > 0 for n in faces]))}
    if kind != MEDIAPIPE:
        s["detector_runs_per_frame"] = float(np.mean([o.detected for o in first]))
    if stages:  # mean wall ms per frame of each stage, over every timed frame
        s["stage_ms_mean"] = {k: float(np.mean([t.get(k, 0.0) for t in stages])) for k in stages[0]}
    return s


def bench_clip(clip: Clip, variants: list[Variant], rounds: int, warmup: int, frames: int | None,
               build: dict, mp_max_faces: int = 1, mp_unavailable: str | None = None,
               log: Callable[[str], None] = _stderr) -> dict:
    """Every row over ``clip``, ``rounds`` interleaved passes; the summary per row (see the module doc)."""
    n = min(frames or len(clip.bgr), len(clip.bgr))
    rows, skipped, headers = {}, {}, {}
    try:
        for v in variants:
            if v.kind == MEDIAPIPE:
                reason = mp_unavailable
                if reason:
                    skipped[v.name] = reason
                    log(f"[side-by-side] {v.name}: skipped ({reason})")
                    continue
                rows[v.name] = _MediaPipeRow(mp_max_faces)
            else:
                rows[v.name] = _EdgeposeRow(v, clip, **build)
            headers[v.name] = rows[v.name].header
            if warmup:  # sessions, arenas, XNNPACK packing: first calls are not what a video pays
                _time_pass(rows[v.name], clip, min(warmup, n), None)
        names = list(rows)
        wall = {k: [] for k in names}
        cpu = {k: [] for k in names}
        first: dict[str, list] = {k: [] for k in names}
        stages: dict[str, list] = {k: [] for k in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)] if names else []
            for k in order:
                w, c = _time_pass(rows[k], clip, n, first[k] if r == 0 else None, stages[k])
                wall[k] += w
                cpu[k] += c
            log(f"[side-by-side] {Path(clip.path).name} round {r + 1}/{rounds}: " + ", ".join(
                f"{k} {1e3 * n / sum(wall[k][-n:]):.0f} fps" for k in names))
    finally:
        for row in rows.values():
            row.close()
    kinds = {v.name: v.kind for v in variants}
    out = {}
    for k in names:
        out[k] = _summary(wall[k], cpu[k], first[k], kinds[k], stages[k])
        out[k]["setup"] = headers[k]
    if MEDIAPIPE in out:
        w, h = clip.size
        for k in names:
            if kinds[k] != MEDIAPIPE:
                out[k]["agreement_with_mediapipe"] = _agreement(first[MEDIAPIPE], first[k], w, h)
                out[k]["fps_ratio_to_mediapipe"] = out[k]["fps"] / out[MEDIAPIPE]["fps"]
    w, h = clip.size
    return {"clip": clip.path, "width": w, "height": h, "frames": n, "rounds": rounds, "rows": out,
            "skipped": skipped}


def run_side_by_side(clips: Sequence[str], variants: list[Variant], rounds: int = 5, warmup: int = 10,
                     frames: int | None = None, model=None, detector: str = "yunet", detector_model=None,
                     detector_size: int | None = None, threads: int | None = 1, overrides: Sequence[str] = (),
                     mp_max_faces: int = 1, log: Callable[[str], None] = _stderr) -> dict:
    """Decode each clip, then :func:`bench_clip`; returns the whole report (JSON-ready)."""
    import platform

    from ..errors import UserError

    if rounds < 1:
        raise UserError(f"--rounds {rounds}: run at least one round")
    load0 = os.getloadavg()
    build = {"model": model, "detector": detector, "detector_model": detector_model,
             "detector_size": detector_size, "threads": threads, "overrides": list(overrides)}
    need_rgb = any(v.kind == MEDIAPIPE for v in variants)
    mp_unavailable = None
    if need_rgb:
        from .mediapipe_peer import unavailable_reason

        # before the first GStreamer pipeline runs: importing mediapipe (whose solutions import
        # matplotlib) after one has run crashed in matplotlib's FreeType module (ft2font) here
        mp_unavailable = unavailable_reason()
    results = []
    t0 = time.perf_counter()
    for path in clips:
        clip = decode_clip(path, frames, rgb=need_rgb)
        log(f"[side-by-side] {path}: {len(clip.bgr)} frames {clip.size[0]}x{clip.size[1]} decoded")
        results.append(bench_clip(clip, variants, rounds, warmup, frames, build, mp_max_faces, mp_unavailable, log))
    return {"clips": results, "rounds": rounds, "warmup": warmup, "threads": threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "overrides": list(overrides),
            "load_average_start": list(load0), "load_average_end": list(os.getloadavg()),
            "duration_s": time.perf_counter() - t0,
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "python": platform.python_version(), "mediapipe": _mediapipe_version()}}


def _mediapipe_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("mediapipe")
    except metadata.PackageNotFoundError:
        return None


def markdown(report: dict) -> str:
    """One table per clip, plus the skipped rows' reasons."""
    lines = []
    for c in report["clips"]:
        lines += [f"{Path(c['clip']).name}: {c['frames']} frames {c['width']}x{c['height']}, {c['rounds']} rounds",
                  "",
                  "| row | frames/s | x MediaPipe | p50 ms | p99 ms | CPU ms/frame | faces/frame | frames with face "
                  "| detector runs/frame | detect / pose ms per frame | pose vs MediaPipe fit: median geodesic (frames) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, s in c["rows"].items():
            ratio = s.get("fps_ratio_to_mediapipe")
            agr = s.get("agreement_with_mediapipe")
            det = s.get("detector_runs_per_frame")
            st = s.get("stage_ms_mean")
            stage = f"{st.get('detect', 0):.2f} / {st.get('pose', 0):.2f}" if st else "-"
            lines.append(
                f"| {name} | {s['fps']:.0f} | {f'{ratio:.2f}' if ratio is not None else '-'} | {s['ms_p50']:.2f} | "
                f"{s['ms_p99']:.2f} | {s['cpu_ms_mean']:.2f} | {s['faces_per_frame']:.2f} | "
                f"{100 * s['frames_with_face']:.0f} % | {f'{det:.2f}' if det is not None else '-'} | {stage} | "
                + (f"{agr['geodesic_median_deg']:.1f} deg ({agr['frames']})" if agr else "-") + " |")
        for name, reason in c["skipped"].items():
            lines.append(f"| {name} | skipped: {reason} | | | | | | | | | |")
        lines.append("")
    la0, la1 = report["load_average_start"], report["load_average_end"]
    lines.append(f"load average (1/5/15 min) at start {la0[0]:.2f} / {la0[1]:.2f} / {la0[2]:.2f}, at end "
                 f"{la1[0]:.2f} / {la1[1]:.2f} / {la1[2]:.2f}; ORT threads {report['threads']}, "
                 f"OMP_NUM_THREADS={report['omp_num_threads']}")
    return "\n".join(lines)
