"""Latency of the GPU face-crop kernel (crop + resize + normalise + layout) against the CPU path.

    edgepose-bench gpu-preprocess --frame 1920x1080 --faces 1 4 8 16 --sizes 112 128 160

For each (input size, face count) on one synthetic-content frame (a real photo when ``--image``
is given, resized to ``--frame``):

* ``upload+kernel``: :meth:`GpuPreprocessor.run` from a host frame (pinned staging copy of the
  frame + the affines, then the kernel), timed with CUDA events on one stream;
* ``kernel``: the launch alone on a frame already on the device (what a zero-copy NVMM source
  pays on Jetson);
* ``cpu``: :func:`edgepose.preprocess.preprocess_batch` (OpenCV warpAffine per face), wall time.

Every configuration is first checked against the kernel's NumPy reference (max abs diff must be
<= 1e-5, else the row says ``mismatch`` and the run exits 1).  Percentiles come from
``--iters`` timed runs after ``--warmup``.  Prints a Markdown table; ``--json`` writes the numbers.
Needs pycuda and a CUDA device (desktop GPU or Jetson).
"""
from __future__ import annotations

import json
import platform

import numpy as np

from edgepose.errors import UserError


def _frame(size: tuple[int, int], image: str | None, channels: int) -> np.ndarray:
    import cv2

    w, h = size
    if image:
        img = cv2.imread(image, cv2.IMREAD_COLOR)
        if img is None:
            raise UserError(f"cannot read --image {image}")
        img = cv2.resize(img, (w, h))
    else:  # smooth content with edges: gradients plus a few discs, so bilinear taps matter
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack([(xx / w) * 255, (yy / h) * 255, ((xx + yy) % 97) / 96 * 255], -1).astype(np.uint8)
        rng = np.random.default_rng(0)
        for _ in range(12):
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.circle(img, c, int(rng.uniform(20, h / 6)), tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
    return img if channels == 3 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _boxes(n: int, size: tuple[int, int], rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    w, h = size
    out = []
    for _ in range(n):
        side = rng.uniform(0.08, 0.3) * h
        x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
        out.append((x, y, x + side, y + side * 1.15))
    return out


def run_gpu_preprocess(frame_size: str = "1920x1080", image: str | None = None, gray: bool = False,
                       faces: list[int] = (1, 4, 8, 16), sizes: list[int] = (112, 128, 160), color_order: str = "RGB",
                       iters: int = 200, cpu_iters: int = 50, warmup: int = 20, json_out: str | None = None) -> int:
    """Measure every (input size, face count), print the table; 1 when a kernel output mismatches."""
    from edgepose.benchmarks.stats import latency_stats, time_callable
    from edgepose.errors import require
    from edgepose.jetson.gpu_preprocess import GpuPreprocessor, reference_crop_resize_normalize
    from edgepose.preprocess import PreprocessSpec, preprocess_batch

    cuda = require("pycuda.driver", "pycuda", "the GPU preprocessing benchmark")
    cuda.init()
    if cuda.Device.count() == 0:
        raise UserError("no CUDA device found; this benchmark needs a GPU (desktop or Jetson)")
    dev = cuda.Device(0)
    ctx = dev.retain_primary_context()
    ctx.push()
    try:
        w, h = (int(v) for v in frame_size.lower().split("x"))
    except ValueError:
        raise UserError(f"--frame must be WxH such as 1920x1080, got {frame_size!r}") from None
    rows, ok = [], True
    try:
        frame = _frame((w, h), image, 1 if gray else 3)
        stream = cuda.Stream()
        start, stop = cuda.Event(), cuda.Event()
        rng = np.random.default_rng(1)
        for size in sizes:
            channels = 1 if color_order == "GRAY" else 3
            spec = PreprocessSpec(input_size=size, color_order=color_order, channels=channels,
                                  mean=(0.5,) if channels == 1 else PreprocessSpec().mean,
                                  std=(0.25,) if channels == 1 else PreprocessSpec().std)
            pre = GpuPreprocessor(spec)
            for n in faces:
                boxes = _boxes(n, (w, h), rng)
                out = cuda.mem_alloc(n * channels * size * size * 4)
                got = np.empty((n, channels, size, size), np.float32)
                pre.run(frame, boxes, int(out), stream)
                cuda.memcpy_dtoh_async(got, out, stream)
                stream.synchronize()
                diff = float(np.abs(got - reference_crop_resize_normalize(frame, boxes, spec)).max())
                status = "ok" if diff <= 1e-5 else "mismatch"
                ok &= status == "ok"

                def timed(fn, iters):
                    ms = []
                    for i in range(warmup + iters):
                        start.record(stream)
                        fn()
                        stop.record(stream)
                        stop.synchronize()
                        if i >= warmup:
                            ms.append(stop.time_since(start))
                    return latency_stats(ms)

                full = timed(lambda: pre.run(frame, boxes, int(out), stream), iters)
                p, shape, _ = pre.upload(frame, boxes, stream)
                stream.synchronize()
                kern = timed(lambda: pre.launch(p, shape, n, int(out), stream), iters)
                cpu = latency_stats(time_callable(lambda: preprocess_batch(frame, boxes, spec), warmup=5,
                                                  iters=cpu_iters))
                rows.append({"size": size, "faces": n, "status": status, "max_abs_diff_vs_reference": diff,
                             "upload_kernel": full, "kernel": kern, "cpu": cpu})
                out.free()
            pre.close()
    finally:
        ctx.pop()
        ctx.detach()

    import cv2

    env = {"gpu": dev.name(), "compute_capability": ".".join(map(str, dev.compute_capability())),
           "cuda_driver": f"{cuda.get_driver_version() // 1000}.{cuda.get_driver_version() % 1000 // 10}",  # 12040 -> 12.4
           "pycuda": __import__("pycuda").VERSION_TEXT, "cpu": platform.processor() or platform.machine(),
           "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads(), "python": platform.python_version(),
           "frame": f"{w}x{h}", "gray_frame": bool(gray), "color_order": color_order,
           "iters": iters, "cpu_iters": cpu_iters}
    print(f"GPU preprocessing: {env['gpu']} (sm_{env['compute_capability'].replace('.', '')}), "
          f"frame {env['frame']}{' GRAY8' if gray else ' BGR'}, -> {color_order} NCHW float32")
    print()
    print("| input | faces | upload+kernel p50 / p99 ms | kernel p50 / p99 ms | CPU (OpenCV) p50 ms | CPU / GPU | check |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f, k, c = r["upload_kernel"], r["kernel"], r["cpu"]
        print(f"| {r['size']} | {r['faces']} | {f['p50']:.3f} / {f['p99']:.3f} | {k['p50']:.4f} / "
              f"{k['p99']:.4f} | {c['p50']:.3f} | {c['p50'] / f['p50']:.1f}x | {r['status']} "
              f"({r['max_abs_diff_vs_reference']:.1e}) |")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump({"schema": "edgepose.gpu_preprocess/1", "environment": env, "rows": rows}, fh, indent=2)
    return 0 if ok else 1

