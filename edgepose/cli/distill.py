"""``edgepose distill --config configs/distill-whenet.yaml key=value ...``: teacher -> small student."""
from __future__ import annotations

import argparse

HELP = "distil a teacher into a small student"
DESCRIPTION = ("Distil a teacher (edgepose checkpoint, imported WHENet, or an ensemble) into a small student on "
               "deployment-detector crops of your own images/videos (and labelled sets); writes best.pt and "
               "student.onnx. Overrides: key=value, e.g. optim.epochs=5 student.name=resnet18.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML recipe (configs/distill-*.yaml); defaults are used without it")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.epochs=3")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run: its out_dir or out_dir/last.pt "
                   "(same config; the optimizer, schedule and data order carry on exactly)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from edgepose.distill.trainer import distill, load_distill_config

    cfg = load_distill_config(args.config, args.overrides)
    result = distill(cfg, progress=not args.no_progress, resume=args.resume)
    last = result["history"][-1] if result["history"] else {}
    print(f"distilled student: {result['best']}" + (f", ONNX: {result['onnx']}" if "onnx" in result else "")
          + (f"; last epoch loss {last.get('train_loss', float('nan')):.4f}" if last else ""))
    return 0
