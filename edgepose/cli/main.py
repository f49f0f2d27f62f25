"""``edgepose`` with subcommands.

Each subcommand lives in its own module that defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``.  Modules are imported only when their command runs, so ``edgepose --help``
is instant and a missing optional dependency only affects the command that needs it.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import os
import shlex
import sys
from pathlib import Path

from ..errors import guarded

#: command name -> module.  The one-line help lives once, in the module's ``HELP``; the listing reads
#: it from the source (:func:`command_help`) so that ``edgepose --help`` imports no command module.
COMMANDS: dict[str, str] = {
    "train": "edgepose.cli.train",
    "eval": "edgepose.cli.evaluate",
    "export": "edgepose.cli.export",
    "distill": "edgepose.cli.distill",
    "quantize": "edgepose.cli.quantize",
    "import": "edgepose.cli.import_teacher",
    "run": "edgepose.cli.run",
    "models": "edgepose.cli.models",
    "synth": "edgepose.cli.synth",
    "engine": "edgepose.cli.engine",
    "jetson": "edgepose.cli.jetson",
    "bench": "edgepose.cli.bench",
    "dms": "edgepose.cli.dms",
    "demo": "edgepose.cli.demo",
}

#: ``edgepose-bench NAME`` / ``edgepose bench NAME``: measurements other than the suite, each one run
#: that writes a figure of docs/results.  Same contract as COMMANDS (HELP, add_arguments, run).
#: ``edgepose-bench`` itself takes no positional argument, so a first word in this table is unambiguous.
BENCH_COMMANDS: dict[str, str] = {
    "soak": "edgepose.cli.bench_soak",
    "profile": "edgepose.cli.bench_profile",
    "detectors": "edgepose.cli.bench_detectors",
    "teachers": "edgepose.cli.bench_teachers",
    "methods": "edgepose.cli.bench_methods",
    "compression": "edgepose.cli.bench_compression",
    "quantize-sweep": "edgepose.cli.bench_quantize_sweep",
    "compare-teacher": "edgepose.cli.bench_compare_teacher",
    "synth-throughput": "edgepose.cli.bench_synth_throughput",
    "gpu-preprocess": "edgepose.cli.bench_gpu_preprocess",
    "pipeline": "edgepose.cli.bench_pipeline",
    "side-by-side": "edgepose.cli.bench_side_by_side",
}


def command_help(module_name: str) -> str:
    """A command module's ``HELP`` string, read from its source without importing it."""
    spec = importlib.util.find_spec(module_name)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "HELP" for t in node.targets)
                and isinstance(node.value, ast.Constant)):
            return str(node.value.value)
    return ""


def _setup_logging() -> None:
    level = os.environ.get("EDGEPOSE_LOG", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")


def invoked_command(args: argparse.Namespace) -> str | None:
    """The command line that reached :func:`run_command` (``prog`` + its argv, shell-quoted), for
    provenance; None when the subcommand's ``run()`` was called without it.  Unlike ``sys.argv``
    it is right for ``main([...])`` called from code and for ``edgepose NAME`` vs ``edgepose-NAME``."""
    argv = getattr(args, "_argv", None)
    if argv is None:
        return None
    return " ".join([getattr(args, "_prog", None) or "edgepose", *(shlex.quote(str(a)) for a in argv)])


def run_command(module_name: str, argv: list[str], prog: str) -> int:
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=prog, description=getattr(module, "DESCRIPTION", module.HELP))
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    # the exact command line, for provenance: sys.argv is wrong when main([...]) is called from code
    args._argv, args._prog = list(argv), prog
    return int(module.run(args) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: edgepose <command> [options]\n\ncommands:")
        for name, module_name in COMMANDS.items():
            print(f"  {name:<10} {command_help(module_name)}")
        print("\nRun `edgepose <command> --help` for a command's options.")
        return 0
    if argv[0] in ("-V", "--version"):
        from .. import __version__

        print(f"edgepose {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if name == "bench":
        return _bench(rest, "edgepose bench")
    return guarded(run_command, COMMANDS[name], rest, f"edgepose {name}")


def _bench(argv: list[str], prog: str) -> int:
    """The suite (``edgepose-bench [options]``) or one of :data:`BENCH_COMMANDS` (``edgepose-bench NAME ...``)."""
    if argv and argv[0] in BENCH_COMMANDS:
        return guarded(run_command, BENCH_COMMANDS[argv[0]], argv[1:], f"{prog} {argv[0]}")
    return guarded(run_command, COMMANDS["bench"], argv, prog)


def train_main() -> int:
    _setup_logging()
    return guarded(run_command, COMMANDS["train"], sys.argv[1:], "edgepose-train")


def bench_main() -> int:
    _setup_logging()
    return _bench(sys.argv[1:], "edgepose-bench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
