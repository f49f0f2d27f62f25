"""``edgepose models summary``: parameter and MAC counts of the model zoo (the table in docs/backbones.md).

    edgepose models summary                 # every model, 6D head, 224 px, deploy form
    edgepose models summary --head bins --size 112 repvgg_a0 mobilenetv3_small

MACs are counted with ``torch.utils.flop_counter`` for one image (MACs = FLOPs / 2); RepVGG is
reported in deploy form (after ``reparameterize``) unless ``--train-form`` is given.  For choosing a
backbone (``model.name`` of a training config) for a target's compute budget.
"""
from __future__ import annotations

import argparse

HELP = "parameters and MACs of the trainable backbones (docs/backbones.md)"
DESCRIPTION = __doc__


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("models", nargs="*", help="registry names (default: all)")
    ap.add_argument("--head", default="6d", choices=["6d", "bins", "6d+bins"])
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--train-form", action="store_true", help="count RepVGG's multi-branch training form")


def run(args: argparse.Namespace) -> int:
    from ..models.summary import summary_table

    print(summary_table(args.models, args.head, args.size, deploy=not args.train_form))
    return 0
