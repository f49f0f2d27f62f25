"""``edgepose engine``: TensorRT engine build (cached), FP16 ONNX conversion, engine info."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import UserError

HELP = "build a TensorRT engine from ONNX (Jetson / desktop GPU)"
DESCRIPTION = (HELP + ". Engines are cached by ONNX sha256 + TensorRT version + GPU/DLA + precision + profile "
               "+ builder options, with a timing cache per device; every engine gets a metadata sidecar "
               "(<engine>.json). Subcommands: build, fp16 (runs anywhere), info.")

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="{build,fp16,info}")
    b = sub.add_parser("build", help="build (or reuse from the cache) a TensorRT engine")
    b.add_argument("onnx", help="ONNX from `edgepose export` (fp32/fp16) or `edgepose quantize --profile tensorrt` (int8)")
    b.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    b.add_argument("-o", "--output", default=None,
                   help="copy the engine here (default: <onnx stem>.<precision>[.dlaN].plan next to the ONNX)")
    b.add_argument("--max-batch", type=int, default=8, help="most faces per inference (profile max, default 8)")
    b.add_argument("--opt-batch", type=int, default=1, help="batch the kernels are tuned for (default 1)")
    b.add_argument("--dla-core", type=int, default=None, metavar="N",
                   help="build for DLA core N (Jetson AGX Orin / Orin NX; static batch = --max-batch)")
    b.add_argument("--gpu-fallback", action="store_true", help="with --dla-core: run unsupported layers on the GPU")
    b.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit in MB (default 1024)")
    b.add_argument("--opt-level", type=int, default=3, help="builder optimisation level 0..5 (default 3)")
    b.add_argument("--cache-dir", default=None, help="engine + timing cache (default $EDGEPOSE_CACHE/trt)")
    b.add_argument("--force", action="store_true", help="rebuild even if the cache has the engine")
    b.add_argument("--verbose", action="store_true", help="verbose TensorRT log")
    f = sub.add_parser("fp16", help="convert an ONNX to FP16 (float32 IO and pose decode), as TensorRT 11 needs")
    f.add_argument("onnx")
    f.add_argument("-o", "--output", default=None, help="default: <stem>.fp16.onnx")
    i = sub.add_parser("info", help="print an engine's (or ONNX's) sidecar metadata and build options")
    i.add_argument("model")


def _default_output(onnx: Path, precision: str, dla_core: int | None) -> Path:
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return onnx.with_name(f"{onnx.stem}.{precision}{dla}.plan")


def run(args: argparse.Namespace) -> int:
    from ..io_safety import check_outputs, with_sidecars

    if args.action == "fp16":
        src = Path(args.onnx)
        check_outputs(with_sidecars([("onnx", src)]),
                      with_sidecars([("-o", args.output or src.with_name(src.stem + ".fp16.onnx"))]))
        from edgepose.jetson.fp16 import convert_fp16

        out = convert_fp16(args.onnx, args.output)
        print(f"wrote {out} (+ {out.name}.json)")
        return 0
    if args.action == "info":
        from ..metadata import MetadataError, load_metadata

        try:
            meta = load_metadata(args.model)
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from None
        except MetadataError as exc:
            raise UserError(str(exc)) from None
        print(json.dumps({"model": meta.model, "format": meta.format, "precision": meta.precision,
                          "input": [meta.input_name, meta.preprocess.channels, meta.preprocess.input_size],
                          "color_order": meta.preprocess.color_order, "sha256": meta.sha256,
                          "build": meta.extra.get("build"), "versions": meta.extra.get("versions"),
                          "device": meta.extra.get("device")}, indent=2))
        return 0

    from edgepose.jetson.build import build_engine
    from edgepose.jetson.options import BuildOptions

    onnx = Path(args.onnx)
    if not onnx.is_file():
        raise UserError(f"ONNX model not found: {onnx}")
    if args.dla_core is not None:
        opts = BuildOptions.for_dla(args.precision, batch=args.max_batch, core=args.dla_core,
                                    gpu_fallback=args.gpu_fallback, workspace_mb=args.workspace_mb,
                                    opt_level=args.opt_level)
    else:
        opts = BuildOptions(precision=args.precision, max_batch=args.max_batch, opt_batch=args.opt_batch,
                            gpu_fallback=args.gpu_fallback, workspace_mb=args.workspace_mb, opt_level=args.opt_level)
    out = Path(args.output) if args.output else _default_output(onnx, args.precision, args.dla_core)
    check_outputs(with_sidecars([("onnx", onnx)]), with_sidecars([("-o", out)]))
    res = build_engine(onnx, opts, cache_dir=args.cache_dir, output=out, force=args.force, verbose=args.verbose)
    state = "reused from cache" if res.cached else f"built in {res.seconds:.1f} s"
    print(f"{res.output} ({state}; cache {res.engine}, key {res.key.digest()})")
    return 0
