"""``edgepose models build``: rebuild the default student shipped in ``edgepose/assets/models`` (docs/models.md).

    edgepose models build --config configs/default-model/build.yaml            # -> runs/default-model
    edgepose models build --config configs/default-model/build.yaml --install  # + copy into the package
    edgepose models build --config configs/default-model/build.yaml --stage roi-heads [--install]
                                       # only the face-presence + box heads, on the built model's frozen trunk

One command, data anyone can obtain: teacher-labelled real faces (YuNet crops of ``data.real``),
synthetic heads with exact labels, training, FP32 ONNX export and INT8 ``cpu`` / ``tensorrt``
profiles; ``--install`` copies the three files, their sidecars and ``manifest.json`` into the
package.  Steps and caches: :mod:`edgepose.assets.build`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "rebuild the shipped default pose model (label, train, export, INT8, --install)"
DESCRIPTION = __doc__

#: the source checkout's root: the default recipe is configs/default-model/build.yaml there
REPO = Path(__file__).resolve().parents[2]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.formatter_class = argparse.RawDescriptionHelpFormatter
    ap.add_argument("--config", default=str(REPO / "configs" / "default-model" / "build.yaml"))
    ap.add_argument("--data-root", help="shared data folder (default: $EDGEPOSE_TEST_DATA or ../shared/data)")
    ap.add_argument("--install", action="store_true", help="copy the results into edgepose/assets/models")
    ap.add_argument("--export-only", action="store_true", help="skip training: export/quantize out_dir/last.pt")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted training from out_dir/last.pt (exactly: optimizer, schedule, data order)")
    ap.add_argument("--stage", default="all", choices=("all", "roi-heads"),
                    help="all (default): the whole build; roi-heads: only train the face-presence + box heads on "
                         "out_dir/last.pt (or roi_heads.model=) and export them (-> roi_heads.out_dir, default "
                         "out_dir/roi-heads); the recipe's roi_heads.enabled runs them inside a whole build")
    ap.add_argument("overrides", nargs="*", metavar="key=value")


def run(args: argparse.Namespace) -> int:
    from ..assets.build import build
    from .main import invoked_command

    # the command recorded in every artifact's provenance: this call's own arguments
    build(args.config, args.overrides, data_root=args.data_root, install_package=args.install,
          export_only=args.export_only, resume=args.resume, command=invoked_command(args) or "edgepose models build",
          stage=args.stage)
    return 0
