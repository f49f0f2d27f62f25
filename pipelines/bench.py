"""End-to-end throughput and per-stage latency of the ``edgepose run`` pipeline on a file.

    python -m edgepose.pipelines.bench ../shared/data/videos/single_face.mp4 \
        --model student_int8.onnx --detector yunet --detector-model yunet_s_320_320.onnx --repeat 5

The processor (models, ONNX Runtime sessions) is built once and warmed up; each repeat then runs
the whole pipeline over the file (decode -> detect/track/pose/smooth -> overlay -> H.264 encode ->
MP4 + JSONL) from a fresh tracker state.  Reported: FPS per repeat (frames / wall time) and the
per-stage table of the median repeat.  The run is built by :func:`edgepose.pipelines.build_run`,
like ``edgepose run``'s.  ``--arch NAME`` exports a randomly initialised registry
model instead of ``--model`` (latency does not depend on the weights; accuracy is meaningless).
"""
from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgepose.pipelines.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="pose model file")
    g.add_argument("--arch", help="registry model exported with random weights (latency only)")
    p.add_argument("--input-size", type=int, default=128, help="input size for --arch (default 128)")
    p.add_argument("--detector", default="yunet")
    p.add_argument("--detector-model", default=None)
    p.add_argument("--detector-size", type=int, default=None)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-output", action="store_true", help="skip the MP4 encode (inference + JSONL only)")
    p.add_argument("--async-encode", action="store_true", help="encode in a GStreamer thread (see edgepose run)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)

    from .builder import build_run
    from .loop import Outputs
    from .options import RunOptions

    with tempfile.TemporaryDirectory(prefix="edgepose-bench-") as tmp:
        tmp = Path(tmp)
        model = Path(args.model) if args.model else _export_arch(args.arch, args.input_size, tmp)
        options = RunOptions(source=args.source, model=model, detector=args.detector,
                             detector_model=args.detector_model, detector_size=args.detector_size,
                             every=args.every, threads=args.threads, progress=False)
        with build_run(options) as run:
            run.execute(max_frames=10)  # warm-up: sessions, caches
            runs = []
            for i in range(args.repeat):
                run.reset()
                s = run.execute(Outputs(jsonl=tmp / f"r{i}.jsonl", video=None if args.no_output else tmp / f"r{i}.mp4",
                                        async_encode=args.async_encode))
                runs.append(s)
                print(f"repeat {i + 1}/{args.repeat}: {s.frames} frames, {s.fps:.1f} FPS", file=sys.stderr)
    fps = [r.fps for r in runs]
    median = sorted(runs, key=lambda r: r.fps)[len(runs) // 2]
    result = {"source": args.source, "model": str(args.model or f"{args.arch} (random weights, fp32 ONNX)"),
              "detector": args.detector, "detector_model": args.detector_model, "every": args.every,
              "threads": args.threads, "encode": not args.no_output, "async_encode": args.async_encode, "fps": fps,
              "fps_median": statistics.median(fps), "latency_ms": median.latency_ms,
              "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()}}
    print(f"FPS per repeat: {', '.join(f'{f:.1f}' for f in fps)} (median {result['fps_median']:.1f})")
    print(median.table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
