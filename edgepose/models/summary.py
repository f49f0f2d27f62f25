"""Parameter and MAC counts of the model zoo (the table in docs/backbones.md).

    python -m edgepose.models.summary                 # every model, 6D head, 224 px, deploy form
    python -m edgepose.models.summary --head bins --size 112 repvgg_a0 mobilenetv3_small

MACs are counted with ``torch.utils.flop_counter`` for one image (MACs = FLOPs / 2), the way
docs/backbones.md ("The zoo") counts them.  RepVGG is reported in deploy form (after ``reparameterize``)
unless ``--train-form`` is given.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["model_summary", "main"]


def model_summary(name: str, head: str = "6d", input_size: int = 224, deploy: bool = True) -> dict:
    """{"model", "head", "input_size", "params", "macs", "num_features", "deploy"} for one model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .registry import create_model

    model = create_model(name, head=head, input_size=input_size).eval()
    if deploy:
        model.reparameterize()
    params = sum(p.numel() for p in model.parameters())
    x = torch.zeros(1, 3, input_size, input_size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return {"model": name, "head": head, "input_size": input_size, "params": params,
            "macs": counter.get_total_flops() // 2, "num_features": model.num_features, "deploy": model.is_deploy}


def main(argv: list[str] | None = None) -> int:
    from .registry import list_models

    ap = argparse.ArgumentParser(prog="python -m edgepose.models.summary", description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="registry names (default: all)")
    ap.add_argument("--head", default="6d", choices=["6d", "bins", "6d+bins"])
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--train-form", action="store_true", help="count RepVGG's multi-branch training form")
    args = ap.parse_args(argv)
    names = args.models or list_models()
    print(f"| model | head | input | features | params (M) | MACs (G) |\n|---|---|---|---|---|---|")
    for n in names:
        s = model_summary(n, args.head, args.size, deploy=not args.train_form)
        form = " (deploy)" if s["deploy"] else ""
        print(f"| {n}{form} | {s['head']} | {s['input_size']} | {s['num_features']} | "
              f"{s['params'] / 1e6:.2f} | {s['macs'] / 1e9:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
