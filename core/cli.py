"""``python -m core <command>``: the lab, headless.

Each command lives in ``core/commands/<name>.py`` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. A :class:`LabError` prints its message (problem and fix) without a
traceback; other exceptions keep theirs. Exit codes (README, "Exit codes"):

- 0 (EXIT_OK): done;
- 1 (EXIT_FAILED): a study ended with failed or cancelled cells (every row is written first);
- 2 (EXIT_USAGE): a usage error: a bad flag (argparse), or a setting refused (:class:`ConfigError`:
  an unknown key, a value out of range, an output folder that exists);
- 3 (EXIT_LAB_ERROR): any other lab error: bad or missing data, missing weights, a full disk,
  training that cannot go on.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from core import __version__
from core.commands.config_file import HelpFormatter, add_verbosity, configure_logging, reparse_with_config, reset_warnings
from core.errors import ConfigError, LabError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LAB_ERROR = 0, 1, 2, 3

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


def prog_name(argv0: str | None = None) -> str:
    """The name the lab was run by: ``imbalance-lab`` (the console script of pyproject.toml), else ``python -m core``."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return "imbalance-lab" if name.split(".")[0] == "imbalance-lab" else "python -m core"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog or prog_name(), description="Imbalance Lab: diffusion-based rebalancing experiments.",
                                     formatter_class=HelpFormatter)
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
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP, formatter_class=HelpFormatter)
        mod.add_arguments(p)
        add_verbosity(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # answered before build_parser imports every command (torch and all: seconds)
        print(f"imbalance-lab {__version__}")
        return EXIT_OK
    reset_warnings()
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
            args = reparse_with_config(parser, args, argv)  # --config FILE: its settings as defaults, explicit flags win
        except SystemExit as exc:  # argparse printed the usage error (2) or the help (0)
            return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
        configure_logging(args.verbosity)
        return int(args._run(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LAB_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
