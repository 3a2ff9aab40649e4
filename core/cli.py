"""``python -m core <command>``: the lab, headless.

Each command lives in ``core/commands/<name>.py`` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. A :class:`LabError` prints its message (problem and fix) and
exits with status 2; other exceptions keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from core import __version__
from core.commands.config_file import add_verbosity, configure_logging, reparse_with_config
from core.errors import LabError

COMMANDS = {
    "dataset": "core.commands.dataset",
    "train-cfg": "core.commands.train_cfg",
    "sample": "core.commands.sample",
    "sample-sd": "core.commands.sample_sd",
    "train-classifier": "core.commands.train_classifier",
    "experiment": "core.commands.experiment",
    "novelty": "core.commands.novelty",
    "export": "core.commands.export",
    "report": "core.commands.report",
    "trajectory": "core.commands.trajectory",
    "app": "core.commands.app",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Imbalance Lab: diffusion-based rebalancing experiments.")
    parser.add_argument("--version", action="version", version=f"imbalance-lab {__version__}")
    add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # command not built yet
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        add_verbosity(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # answered before build_parser imports every command (torch and all: seconds)
        print(f"imbalance-lab {__version__}")
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args = reparse_with_config(parser, args, argv)  # --config FILE: its settings as defaults, explicit flags win
        configure_logging(args.verbosity)
        return int(args._run(args) or 0)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
