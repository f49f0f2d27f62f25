"""Parameter and MAC counts of the model zoo (the table in docs/backbones.md).

    edgepose models summary                 # every model, 6D head, 224 px, deploy form
    edgepose models summary --head bins --size 112 repvgg_a0 mobilenetv3_small

MACs are counted with ``torch.utils.flop_counter`` for one image (MACs = FLOPs / 2), the way
docs/backbones.md ("The zoo") counts them.  RepVGG is reported in deploy form (after ``reparameterize``)
unless ``--train-form`` is given.
"""
from __future__ import annotations

__all__ = ["model_summary", "summary_table"]


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


def summary_table(names: list[str] | None = None, head: str = "6d", input_size: int = 224, deploy: bool = True) -> str:
    """The Markdown table of docs/backbones.md for ``names`` (default: every registered model)."""
    from .registry import list_models

    lines = ["| model | head | input | features | params (M) | MACs (G) |", "|---|---|---|---|---|---|"]
    for n in names or list_models():
        s = model_summary(n, head, input_size, deploy=deploy)
        form = " (deploy)" if s["deploy"] else ""
        lines.append(f"| {n}{form} | {s['head']} | {s['input_size']} | {s['num_features']} | "
                     f"{s['params'] / 1e6:.2f} | {s['macs'] / 1e9:.3f} |")
    return "\n".join(lines)
