"""``edgepose eval``: evaluate a model on labelled datasets, with rotated / flipped variants.

Examples::

    edgepose eval runs/overfit/best.pt --data aflw2000:../shared/data/aflw2000-sample
    edgepose eval model.onnx --data aflw2000:/data/AFLW2000 --variants=-30,-15,15,30,90,180,flip --aligned
    edgepose eval runs/x/best.pt --data-config runs/x/config.yaml --output eval.json   # the run's data.val

Prints a table (Euler MAE p/y/r/mean, GE, MAEV, wrapped and two-solution MAE per variant) and
writes the full report as JSON (default: ``<model>.eval.json``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "evaluate a model on a labelled dataset (MAE, geodesic, MAEV, robustness)"
DESCRIPTION = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", help="model artifact: .pt checkpoint (or .onnx / .engine with edgepose.runtime)")
    parser.add_argument("--data", action="append", default=[], metavar="FORMAT:PATH[,k=v]",
                        help="dataset, e.g. aflw2000:/data/AFLW2000 or folder:labels.csv (repeatable)")
    parser.add_argument("--data-config", metavar="YAML",
                        help="YAML with a dataset mapping, a list or {name: mapping} of them, "
                             "or a training config (its data.val is used)")
    parser.add_argument("--variants", default=None,
                        help="comma list of CCW rotation angles, 'flip', 'ANGLE+flip' or 'none' "
                             "(default: -30,-15,15,30,90,180,flip)")
    parser.add_argument("--aligned", action="store_true", help="also report GE/MAE after removing the mean offset")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--output", "-o", help="JSON report path (default: <model>.eval.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _datasets_from_yaml(path: Path) -> dict[str, dict]:
    import yaml

    from ..errors import DataError

    if not path.exists():
        raise DataError(f"--data-config {path}: file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"--data-config {path} is not valid YAML: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):  # a training config
        val = doc["data"].get("val")
        if not val:
            raise DataError(f"--data-config {path}: the training config has no data.val dataset")
        doc = val
    if isinstance(doc, dict) and "format" in doc:
        return {doc.get("name") or doc["format"]: {k: v for k, v in doc.items() if k != "name"}}
    if isinstance(doc, list):
        return {(d.get("name") or f"{d.get('format', 'dataset')}{i}"): {k: v for k, v in d.items() if k != "name"}
                for i, d in enumerate(doc) if isinstance(d, dict)}
    if isinstance(doc, dict) and all(isinstance(v, dict) for v in doc.values()):
        return dict(doc)
    raise DataError(f"--data-config {path}: expected a dataset mapping with a 'format' key, a list of them, "
                    f"or a training config with data.val")


def run(args) -> int:
    from ..errors import UserError
    from ..evaluation import evaluate, format_table, parse_variants
    from ..metadata import atomic_write_text
    from ..data.options import parse_data_arg

    datasets: dict[str, dict] = {}
    for text in args.data:
        cfg = parse_data_arg(text)
        name = cfg["format"]
        i = 2
        while name in datasets:
            name, i = f"{cfg['format']}{i}", i + 1
        datasets[name] = cfg
    if args.data_config:
        datasets.update(_datasets_from_yaml(Path(args.data_config)))
    if not datasets:
        raise UserError("no dataset: give --data FORMAT:PATH (e.g. aflw2000:/data/AFLW2000) or --data-config")
    if args.batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    variants = parse_variants(args.variants)
    out = Path(args.output) if args.output else Path(args.model).with_name(Path(args.model).name + ".eval.json")
    from ..io_safety import check_outputs, paths_in, with_sidecars

    check_outputs(with_sidecars([("model", args.model)]) + [("--data-config", args.data_config)]
                  + [p for name, cfg in datasets.items() for p in paths_in(f"dataset {name}", cfg)],
                  [("--output", out)])
    report = evaluate(args.model, datasets, variants, batch_size=args.batch_size, aligned=args.aligned,
                      device=args.device, progress=not args.no_progress)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(format_table(report, aligned=args.aligned), end="")
    print(f"report: {out}")
    return 0
