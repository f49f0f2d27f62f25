"""End-to-end throughput and per-stage latency of the ``edgepose run`` pipeline on a file.

    edgepose-bench pipeline ../shared/data/videos/single_face.mp4 \
        --model student_int8.onnx --detector yunet --detector-model yunet_s_320_320.onnx --repeat 5

The processor (models, ONNX Runtime sessions) is built once and warmed up; each repeat then runs
the whole pipeline over the file (decode -> detect/track/pose/smooth -> overlay -> H.264 encode ->
MP4 + JSONL) from a fresh tracker state.  Reported: FPS per repeat (frames / wall time) and the
per-stage table of the median repeat.  The run is built by :func:`edgepose.pipelines.build_run`,
like ``edgepose run``'s.  ``--arch NAME`` exports a randomly initialised registry
model instead of ``--model`` (latency does not depend on the weights; accuracy is meaningless).
"""
from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path


def _export_arch(arch: str, input_size: int, folder: Path) -> Path:
    import torch

    from ..export import export_onnx
    from ..models import create_model

    torch.manual_seed(0)
    model = create_model(arch, head="6d", input_size=input_size).eval()
    path = folder / f"{arch}_{input_size}_random.onnx"
    export_onnx(model, path)
    return path


def bench_pipeline(source: str, model: str | None = None, arch: str | None = None, input_size: int = 128,
                   detector: str = "yunet", detector_model: str | None = None, detector_size: int | None = None,
                   every: int = 1, threads: int | None = None, repeat: int = 3, no_output: bool = False,
                   async_encode: bool = False, json_path: str | None = None,
                   overrides: list[str] | None = None) -> dict:
    """Warm up once, then run the whole pipeline ``repeat`` times; prints and returns the results.
    ``overrides``: runtime options as ``edgepose run --set`` takes them (e.g. ``tracker.roi=true``)."""
    from .builder import build_run
    from .loop import Outputs
    from .options import RunOptions

    with tempfile.TemporaryDirectory(prefix="edgepose-bench-") as tmp:
        tmp = Path(tmp)
        model_path = Path(model) if model else _export_arch(arch, input_size, tmp)
        options = RunOptions(source=source, model=model_path, detector=detector,
                             detector_model=detector_model, detector_size=detector_size,
                             every=every, threads=threads, overrides=list(overrides or []), progress=False)
        with build_run(options) as run:
            run.execute(max_frames=10)  # warm-up: sessions, caches
            runs = []
            for i in range(repeat):
                run.reset()
                s = run.execute(Outputs(jsonl=tmp / f"r{i}.jsonl", video=None if no_output else tmp / f"r{i}.mp4",
                                        async_encode=async_encode))
                runs.append(s)
                print(f"repeat {i + 1}/{repeat}: {s.frames} frames, {s.fps:.1f} FPS", file=sys.stderr)
    fps = [r.fps for r in runs]
    median = sorted(runs, key=lambda r: r.fps)[len(runs) // 2]
    result = {"source": source, "model": str(model or f"{arch} (random weights, fp32 ONNX)"),
              "detector": detector, "detector_model": detector_model, "every": every,
              "threads": threads, "overrides": list(overrides or []), "encode": not no_output, "async_encode": async_encode, "fps": fps,
              "fps_median": statistics.median(fps), "latency_ms": median.latency_ms,
              "id_switches": median.id_switches,
              "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()}}
    print(f"FPS per repeat: {', '.join(f'{f:.1f}' for f in fps)} (median {result['fps_median']:.1f})")
    print(median.table)
    if median.id_switches:
        from ..runtime.idswitch import format_id_switches

        print(format_id_switches(median.id_switches))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result
