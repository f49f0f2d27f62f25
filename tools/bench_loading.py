"""Measure PoseDataset throughput with and without the crop cache (single process; developer tool).

    .venv/bin/python tools/bench_loading.py --format aflw2000 --root ../shared/data/aflw2000-sample \
        --repeat 20 --cache /tmp/edgepose_bench_cache

Needs edgepose installed (``pip install -e .``); not part of the package.
"""
from __future__ import annotations

import argparse
import tempfile
import time


def main(argv=None) -> int:
    from edgepose.data.augment import Augment
    from edgepose.data.cache import CropCache
    from edgepose.data.dataset import PoseDataset
    from edgepose.data.registry import build_reader
    from edgepose.preprocess import PreprocessSpec

    ap = argparse.ArgumentParser(prog="tools/bench_loading.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--format", default="aflw2000")
    ap.add_argument("--root", required=True, help="dataset folder (the label file for --format folder, "
                    "the .npz for biwi_npz, the video for video)")
    ap.add_argument("--repeat", type=int, default=10, help="passes over the dataset")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--cache", default=None, help="cache folder (default: a temporary one)")
    args = ap.parse_args(argv)
    spec = PreprocessSpec(input_size=args.size)
    key = {"folder": "labels", "biwi_npz": "path", "video": "paths"}.get(args.format, "root")
    reader = build_reader({"format": args.format, key: args.root})
    aug = Augment(flip_p=0.5, rotate_p=0.5, rotate_deg=30, box_scale=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        cache = CropCache.open(reader, spec, args.cache or tmp, progress=False)
        for name, src in (("direct", reader), ("cache", cache)):
            ds = PoseDataset(src, spec, aug)
            ds[0]  # warm up
            t0 = time.perf_counter()
            n = 0
            for _ in range(args.repeat):
                for i in range(len(ds)):
                    ds[i]
                    n += 1
            dt = time.perf_counter() - t0
            print(f"{name:>6}: {n} items in {dt:.2f} s = {n / dt:.1f} items/s (1 process, augment on)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
