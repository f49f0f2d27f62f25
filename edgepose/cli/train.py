"""``edgepose train`` / ``edgepose-train``: train a head-pose model from a YAML config.

Examples::

    edgepose-train configs/baseline-6d.yaml data.train.root=/data/300W_LP optim.lr=3e-4
    edgepose-train configs/overfit-aflw2000.yaml --output runs/overfit
    edgepose-train --resume runs/overfit                 # continue an interrupted run
    torchrun --nproc_per_node=4 -m edgepose.cli.main train configs/baseline-6d.yaml   # DDP
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "train a head-pose model from a YAML config (same as edgepose-train)"
DESCRIPTION = __doc__

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("config", nargs="?", help="YAML recipe (configs/*.yaml); optional with --resume")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=3e-4 epochs=20 data.train.root=/data")
    parser.add_argument("--output", "-o", help="run directory (same as output=...)")
    parser.add_argument("--resume", metavar="RUN_OR_CKPT",
                        help="continue from RUN/last.pt (or a checkpoint file) with its saved config")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (same as device=...)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _resolve(args) -> tuple:
    from ..config import ConfigError
    from ..errors import UserError
    from ..train.config import load_train_config

    overrides = list(args.overrides or [])
    config = args.config
    if config and "=" in config and not Path(config).exists():  # only overrides were given
        overrides.insert(0, config)
        config = None
    resume = None
    if args.resume:
        resume = Path(args.resume)
        run_dir = resume if resume.is_dir() else resume.parent
        if not resume.exists():
            raise UserError(f"--resume {resume}: no such run directory or checkpoint")
        if config is None:
            # the run's own resolved config: resuming must not silently change the recipe
            config = run_dir / "config.yaml"
            if not config.exists():
                raise UserError(f"--resume {resume}: {config} is missing; pass the config file explicitly")
            overrides.insert(0, f"output={run_dir}")
    if config is None and not overrides:
        raise UserError("give a config file, e.g. `edgepose-train configs/overfit-aflw2000.yaml`")
    if args.output:
        overrides.append(f"output={args.output}")
    if args.device:
        overrides.append(f"device={args.device}")
    try:
        cfg = load_train_config(config, overrides)
    except ConfigError as exc:
        raise UserError(f"config: {exc}") from None
    return cfg, resume


def run(args) -> int:
    import yaml

    from ..config import ConfigError, to_dict
    from ..errors import UserError

    cfg, resume = _resolve(args)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from ..train.trainer import Trainer

    try:
        result = Trainer(cfg, resume=resume).fit()
    except ConfigError as exc:  # e.g. a bad loss / method option found while building
        raise UserError(f"config: {exc}") from None
    keys = [k for k in ("train_loss", "val_mae", "val_ge", "val_maev") if k in result]
    summary = ", ".join(f"{k}={result[k]:.4f}" for k in keys)
    print(f"done: {summary}\nlast: {result['last']}\nbest: {result['best']}")
    return 0
