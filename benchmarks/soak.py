"""Soak benchmark: does ``edgepose run`` keep its memory flat over a long run?

Not a CI test (it runs for tens of minutes).  It builds a long file by looping a short clip with
``ffmpeg -stream_loop N -c copy`` (no re-encode: the frames are the clip's), runs the real
``edgepose run`` command on it in a child process (GStreamer decode, detector, tracker, pose model,
smoothing, the DMS layer, the JSONL writer), samples the child's resident set size (VmRSS) and the
frame count reached (the last record of its JSONL) every ``--every-s`` seconds, and fits a line
RSS(frame) over the samples after ``--warmup`` frames.  The slope in KB per frame is the figure;
issue 16 targets < 0.01 KB/frame (about 1 MB per 100,000 frames, i.e. per hour at 30 fps).

    edgepose-bench soak --frames 100000 --out soak.json

Extra arguments after ``--`` go to ``edgepose run`` (the defaults keep it fast: ``--every 10``).
Ctrl-C stops the run early and still fits the slope over the samples taken (``"interrupted": true``).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import UserError

__all__ = ["soak", "rss_slope"]

DEFAULT_CLIP = "videos/head-pose-face-detection-male.mp4"  # 480x270, 12 fps, 62 frames, one face


def _rss_kb(pid: int) -> int | None:
    try:
        m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _last_frame(jsonl: Path) -> int | None:
    """Index of the last complete frame record (reads the file's last 8 KB)."""
    try:
        with open(jsonl, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()[1:] if size > 8192 else tail.splitlines()):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("type") == "frame":
            return int(rec["frame"])
    return None


def rss_slope(samples: list[tuple[int, int]], warmup: int) -> tuple[float, int]:
    """Least-squares slope (KB per frame) of RSS over frames >= ``warmup``; and the samples used."""
    pts = [(f, r) for f, r in samples if f >= warmup]
    n = len(pts)
    if n < 3:
        return math.nan, n
    mf = sum(f for f, _ in pts) / n
    mr = sum(r for _, r in pts) / n
    sxx = sum((f - mf) ** 2 for f, _ in pts)
    sxy = sum((f - mf) * (r - mr) for f, r in pts)
    return (sxy / sxx if sxx else math.nan), n


def make_long_clip(clip: Path, frames: int, out: Path) -> int:
    """Loop ``clip`` (stream copy) until it holds at least ``frames`` frames; returns the loop count."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                            "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(clip)],
                           capture_output=True, text=True, check=True)
    per = int(probe.stdout.strip())
    loops = math.ceil(frames / per)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(clip), "-an",
                    "-c", "copy", str(out)], check=True)
    return loops


def soak(frames: int = 100_000, clip: str | None = None, warmup: int = 10_000, every_s: float = 2.0,
         out: str | None = None, workdir: str | None = None, run_args: list[str] | None = None) -> int:
    """Run ``edgepose run`` over ``frames`` frames of a looped clip, sample its RSS, fit the slope.

    ``run_args`` replace the default ``edgepose run`` options; returns the exit status."""
    if frames <= warmup:
        raise UserError("--frames must exceed --warmup")
    clip_path = Path(clip) if clip else Path(os.environ.get("EDGEPOSE_TEST_DATA", "../shared/data")) / DEFAULT_CLIP
    if not clip_path.is_file():
        raise UserError(f"clip not found: {clip_path}; give --clip PATH or set EDGEPOSE_TEST_DATA")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} not found on PATH (apt-get install ffmpeg)")
    work = Path(workdir or tempfile.mkdtemp(prefix="edgepose-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    long_clip, jsonl = work / "soak.mp4", work / "soak.jsonl"
    loops = make_long_clip(clip_path, frames, long_clip)
    run_args = run_args or ["--every", "10", "--dms", "euro-ncap-2023", "--dms-events", "none"]
    cmd = [sys.executable, "-m", "edgepose.cli.main", "run", str(long_clip), "--max-frames", str(frames),
           "--jsonl", str(jsonl), "-q", *run_args]
    print("running:", " ".join(cmd), file=sys.stderr)
    t0 = time.monotonic()
    log_path = work / "run.log"  # a file, not a pipe: a chatty run must never block on a full pipe
    log_fh = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_fh, text=True)
    samples: list[tuple[int, int]] = []
    interrupted = False
    try:
        while proc.poll() is None:
            time.sleep(every_s)
            rss, frame = _rss_kb(proc.pid), _last_frame(jsonl)
            if rss is not None and frame is not None:
                samples.append((frame, rss))
                if len(samples) % 30 == 0:
                    print(f"frame {frame}: RSS {rss / 1024:.1f} MB", file=sys.stderr)
    except KeyboardInterrupt:  # measure what we have: the run stops cleanly, the slope is fitted
        interrupted = True
        proc.send_signal(signal.SIGINT)
    proc.wait()
    log_fh.close()
    err = log_path.read_text(errors="replace")
    wall = time.monotonic() - t0
    if proc.returncode != 0 and not interrupted:
        print(err[-2000:], file=sys.stderr)
        return proc.returncode
    slope, used = rss_slope(samples, warmup)
    post = [r for f, r in samples if f >= warmup]
    result = {"frames": samples[-1][0] + 1 if samples else 0, "requested_frames": frames,
              "interrupted": interrupted,
              "clip": clip_path.name, "loops": loops, "warmup_frames": warmup, "samples": used,
              "rss_slope_kb_per_frame": round(slope, 5),
              "rss_mb_at_warmup": round(post[0] / 1024, 1) if post else None,
              "rss_mb_at_end": round(post[-1] / 1024, 1) if post else None,
              "wall_s": round(wall, 1), "command": " ".join(cmd), "run_stderr_tail": err[-1500:],
              "series": samples}
    print(f"{result['frames']} frames in {wall:.0f} s; RSS slope after {warmup} frames: "
          f"{slope:.5f} KB/frame over {used} samples (RSS {result['rss_mb_at_warmup']} -> "
          f"{result['rss_mb_at_end']} MB)")
    if out:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return 0

