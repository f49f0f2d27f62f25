"""``edgepose jetson``: deployment helpers that run anywhere (DeepStream config, setup plan, device info)."""
from __future__ import annotations

import argparse
import json
import subprocess
from importlib import resources
from pathlib import Path

from ..errors import UserError

HELP = "Jetson deployment helpers (DeepStream config, setup dry-run)"
DESCRIPTION = (HELP + ". deepstream-config writes an nvinfer secondary-GIE config from a model's metadata; "
               "setup runs jetson/setup_jetson.sh (add --dry-run to print the plan); info prints L4T/JetPack, "
               "power mode and clocks.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="{deepstream-config,setup,info}")
    d = sub.add_parser("deepstream-config", help="nvinfer SGIE config for the pose model")
    d.add_argument("model", help="pose model (.onnx or .engine/.plan) with its metadata sidecar")
    d.add_argument("-o", "--output", required=True, help="config file to write, e.g. sgie_pose.txt")
    d.add_argument("--engine", default=None, help="model-engine-file (default: derived from the ONNX name)")
    d.add_argument("--batch-size", type=int, default=16, help="faces per batch (default 16)")
    d.add_argument("--gie-id", type=int, default=2, help="gie-unique-id of this SGIE (default 2)")
    d.add_argument("--pgie-id", type=int, default=1, help="operate-on-gie-id: the face detector's id (default 1)")
    d.add_argument("--face-class", default="0", help="operate-on-class-ids of the face class (default 0)")
    d.add_argument("--min-face", type=int, default=32, help="input-object-min-width/height in px (default 32)")
    d.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="network-mode (default: the model's precision)")
    d.add_argument("--dla-core", type=int, default=None, help="enable-dla + use-dla-core N")
    s = sub.add_parser("setup", help="run jetson/setup_jetson.sh (pass its options after --)")
    s.add_argument("script_args", nargs=argparse.REMAINDER, help="e.g. -- --dry-run --jetpack 6")
    sub.add_parser("info", help="L4T / JetPack / module, nvpmodel mode and clocks (JSON)")


def _setup_script() -> Path:
    repo = Path(__file__).resolve().parents[2] / "jetson" / "setup_jetson.sh"
    if repo.is_file():
        return repo
    return Path(str(resources.files("edgepose.jetson").joinpath("setup_jetson.sh")))


def run(args: argparse.Namespace) -> int:
    if args.action == "deepstream-config":
        from edgepose.jetson.deepstream import SgieOptions, write_sgie_config

        if args.batch_size < 1:
            raise UserError("--batch-size must be >= 1")
        from ..io_safety import check_outputs, with_sidecars

        check_outputs(with_sidecars([("model", args.model)]) + [("--engine", args.engine)], [("-o", args.output)])
        precision = {"int8": "int8-tensorrt"}.get(args.precision, args.precision)
        opts = SgieOptions(gie_unique_id=args.gie_id, operate_on_gie_id=args.pgie_id,
                           operate_on_class_ids=args.face_class, batch_size=args.batch_size, min_face=args.min_face,
                           engine_file=args.engine, precision=precision, dla_core=args.dla_core)
        out = write_sgie_config(args.model, args.output, opts)
        print(f"wrote {out}")
        return 0
    if args.action == "setup":
        script = _setup_script()
        if not script.is_file():
            raise UserError(f"setup script not found at {script}; run it from the edgepose source tree (jetson/)")
        extra = [a for a in args.script_args if a != "--"]
        return subprocess.call(["bash", str(script)] + extra)
    from edgepose.jetson.platform import read_jetson_info
    from edgepose.jetson.power import read_power_state

    info = read_jetson_info()
    print(json.dumps({"l4t": info.l4t, "jetpack": info.jetpack_major, "model": info.model, "family": info.family,
                      "dla_cores": info.dla_cores, "power": read_power_state()}, indent=2))
    return 0
