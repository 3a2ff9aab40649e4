"""``--config FILE`` for train-cfg, train-classifier and sample, and the global ``-q``/``-v``.

A config file is a saved run's ``config.json`` (or a sample folder's ``params.json``), or a
JSON/TOML file with the same keys. Its values become the command's defaults and the command
line is parsed again, so a flag given explicitly still wins. Settings that have no flag
(e.g. ``log_every``, ``data.subset_seed``) are taken from the file as they are.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ToDefaults = Callable[[dict], dict]  # the file's dict -> {argparse dest: value}


def add_config_argument(p: argparse.ArgumentParser, kind: str | None, to_defaults: ToDefaults) -> None:
    p.add_argument("--config", metavar="FILE", default=None,
                   help="take every setting from FILE (a run's config.json, or JSON/TOML with its keys); flags given as well override it")
    p.set_defaults(_config_parser=p, _config_kind=kind, _config_defaults=to_defaults)


def load_config_file(path: str | Path, kind: str | None = None) -> dict:
    """The file as a dict; a clear error when it is missing, unreadable or another kind's."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} not found.", "Pass a run's config.json, e.g. --config runs/<run>/config.json.") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc}).", "Fix the file, or pass a run's config.json.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a table of settings.", "Pass a run's config.json.")
    if kind is not None and data.get("kind") not in (None, kind):
        raise ConfigError(f"{path} is the config of a '{data.get('kind')}' run, not a '{kind}' one.", f"Pass the config.json of a '{kind}' run.")
    return data


def reparse_with_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """``args`` again, with ``--config FILE``'s values as defaults (explicit flags still win).
    The file's dict is kept as ``args.config_dict`` (None without --config)."""
    sub, path = getattr(args, "_config_parser", None), getattr(args, "config", None)
    if sub is None:
        return args
    if not path:
        args.config_dict = None
        return args
    data = load_config_file(path, args._config_kind)
    sub.set_defaults(**{k: v for k, v in args._config_defaults(data).items() if v is not None or sub.get_default(k) is None})
    args = parser.parse_args(argv)
    args.config_dict = data
    return args


def without(data: dict | None, *keys: str) -> dict:
    """The file's settings minus ``keys`` (what the flags set anyway)."""
    return {k: v for k, v in (data or {}).items() if k not in keys}


# ------------------------------------------------------------------------------ -q / -v
def add_verbosity(p: argparse.ArgumentParser, top: bool = False) -> None:
    """-q / -v, accepted before or after the command (on a command, absent flags leave the top's value)."""
    default = 0 if top else argparse.SUPPRESS
    p.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=default,
                   help="no progress bars or per-step lines; only results and errors")
    p.add_argument("-v", "--verbose", dest="verbosity", action="count", default=default,
                   help="more detail: log messages, and each study cell's progress as a line (-vv: debug)")


def configure_logging(verbosity: int) -> None:
    """-q: errors only; default: warnings; -v: info; -vv: debug (the root logger, for the CLI's process)."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(max(logging.DEBUG, logging.WARNING - 10 * int(verbosity)))
