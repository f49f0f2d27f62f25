"""``edgepose`` with subcommands.

Each subcommand lives in its own module that defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``.  Modules are imported only when their command runs, so ``edgepose --help``
is instant and a missing optional dependency only affects the command that needs it.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys

from ..errors import guarded

#: command name -> (module, one-line help).  The help is duplicated here so that
#: ``edgepose --help`` does not import every module.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("edgepose.cli.train", "train a head-pose model from a YAML config (same as edgepose-train)"),
    "eval": ("edgepose.cli.evaluate", "evaluate a model on a labelled dataset (MAE, geodesic, MAEV, robustness)"),
    "export": ("edgepose.cli.export", "export a checkpoint to ONNX with a metadata sidecar"),
    "distill": ("edgepose.cli.distill", "distil a teacher into a small student"),
    "quantize": ("edgepose.cli.quantize", "INT8 post-training quantization (tensorrt and cpu profiles) with a report"),
    "import": ("edgepose.cli.import_teacher", "import a public teacher (WHENet) as an edgepose checkpoint"),
    "run": ("edgepose.cli.run", "run face detection + head pose on a video source (GStreamer pipeline)"),
    "models": ("edgepose.cli.models", "list and fetch known face-detector and pose models"),
    "synth": ("edgepose.cli.synth", "render synthetic heads with exact pose labels"),
    "engine": ("edgepose.cli.engine", "build a TensorRT engine from ONNX (Jetson / desktop GPU)"),
    "jetson": ("edgepose.cli.jetson", "Jetson deployment helpers (DeepStream config, setup dry-run)"),
    "bench": ("edgepose.cli.bench", "benchmark latency, accuracy, size and power (same as edgepose-bench)"),
    "dms": ("edgepose.cli.dms", "driver monitoring: replay a recorded run through a DMS preset (zones, events)"),
    "demo": ("edgepose.cli.demo", "the offline end-to-end demo (synthetic video -> pipeline -> DMS)"),
}


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
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<10} {help_}")
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
    return guarded(run_command, COMMANDS[name][0], rest, f"edgepose {name}")


def train_main() -> int:
    _setup_logging()
    return guarded(run_command, COMMANDS["train"][0], sys.argv[1:], "edgepose-train")


def bench_main() -> int:
    _setup_logging()
    return guarded(run_command, COMMANDS["bench"][0], sys.argv[1:], "edgepose-bench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
