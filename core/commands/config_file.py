"""The CLI's shared grammar: ``--config FILE`` on every command, deprecated spellings, clean help, ``-q``/``-v``.

A config file is a saved run's ``config.json`` (or a sample folder's ``params.json``), or a
JSON/TOML file whose keys are the command's flags (``--batch-size`` -> ``batch_size``). Its values
become the command's defaults and the command line is parsed again, so a flag given explicitly
still wins. Settings that have no flag (e.g. ``log_every``, ``data.subset_seed``) are taken from the
file as they are. A key the command does not know is refused with the nearest valid name.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Iterable

from core.settings.config_check import check_keys
from core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ToDefaults = Callable[[dict], dict]  # the file's dict -> {argparse dest: value}
META = ("kind", "created", "provenance", "regated")  # what a saved config.json adds besides settings (core.store.runs.META_KEYS)
_NOT_SETTINGS = {"help", "config", "verbosity", "version"}


def add_config_argument(p: argparse.ArgumentParser, kind: str | None = None, to_defaults: ToDefaults | None = None,
                        known: Callable[[], Iterable[str]] | Iterable[str] = ()) -> None:
    """``--config FILE``. ``to_defaults`` maps a saved file (config.json, params.json) to flag dests; a
    key that is a flag's name (dashes or underscores) is taken as that flag anyway. ``known``: further
    keys the file may hold (the run config's own fields, what the run recorded), else refused."""
    p.add_argument("--config", metavar="FILE", default=None,
                   help="take the settings from FILE (a run's config.json, or JSON/TOML whose keys are this command's flags); "
                        "flags given as well override it")
    p.set_defaults(_config_parser=p, _config_kind=kind, _config_defaults=to_defaults, _config_known=known)


def load_config_file(path: str | Path, kind: str | None = None) -> dict:
    """The file as a dict; a clear error when it is missing, unreadable or another kind's."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} not found.", "Pass a run's config.json, e.g. --config runs/<run>/config.json.") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} cannot be read as text ({type(exc).__name__}).", "Pass a JSON or TOML file.") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc}).", "Fix the file, or pass a run's config.json.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a table of settings.", "Pass a run's config.json.")
    if kind is not None and data.get("kind") not in (None, kind):
        raise ConfigError(f"{path} is the config of a '{data.get('kind')}' run, not a '{kind}' one.", f"Pass the config.json of a '{kind}' run.")
    return data


def flag_dests(p: argparse.ArgumentParser) -> dict[str, str]:
    """{file key: dest} for every setting flag of a command: ``batch_size`` and ``batch-size`` both name --batch-size."""
    out = {}
    for a in p._actions:
        if a.dest in _NOT_SETTINGS or a.dest.startswith("_") or a.default is argparse.SUPPRESS and not a.option_strings:
            continue
        names = [a.dest] + [o.lstrip("-") for o in a.option_strings if o.startswith("--")]
        for n in names:
            out.setdefault(n, a.dest)
            out.setdefault(n.replace("-", "_"), a.dest)
    return out


def reparse_with_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """``args`` again, with ``--config FILE``'s values as defaults (explicit flags still win).
    The file's dict, less what only the flags take, is kept as ``args.config_dict`` (None without --config)."""
    sub, path = getattr(args, "_config_parser", None), getattr(args, "config", None)
    if sub is None:
        return args
    if not path:
        args.config_dict = None
        return args
    data = load_config_file(path, args._config_kind)
    dests = flag_dests(sub)
    mapped = args._config_defaults(data) if args._config_defaults else {}
    known = args._config_known() if callable(args._config_known) else args._config_known
    known, read = set(known) | set(META), _read_by(args._config_defaults, data)
    check_keys(f"--config {path}", data, set(dests) | known | read)
    # a key named like a flag sets that flag, unless the command's own mapping reads it (params.json's guidance_scale)
    by_flag = {dests[k]: v for k, v in data.items() if k in dests and k not in known and k not in read}
    defaults = {**by_flag, **mapped}
    sub.set_defaults(**{k: v for k, v in defaults.items() if v is not None or sub.get_default(k) is None})
    args = parser.parse_args(argv)
    args.config_dict = {k: v for k, v in data.items() if k not in dests or k in known}
    return args


def _read_by(to_defaults: ToDefaults | None, data: dict) -> set[str]:
    """The file keys a command's mapping reads (each key alone, so a key it ignores is not counted)."""
    if to_defaults is None:
        return set()
    return {k for k in data if to_defaults({k: data[k]})}


def without(data: dict | None, *keys: str) -> dict:
    """The file's settings minus ``keys`` (what the flags set anyway)."""
    return {k: v for k, v in (data or {}).items() if k not in keys}


# ------------------------------------------------------------------------------ deprecated spellings
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """A deprecation note on stderr, once per command line (a --config run parses it twice)."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def reset_warnings() -> None:
    _warned.clear()


class _Deprecated(argparse.Action):
    """An old spelling that still works for one release: sets the new flag's dest and warns."""

    def __init__(self, option_strings, dest, message: str = "", **kw):
        self.message = message
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_once(self.message)
        setattr(namespace, self.dest, values)


def add_deprecated(p, old: str, dest: str, message: str, **kw) -> None:
    """``old`` as a hidden alias of the flag whose dest is ``dest``, warning with ``message``."""
    p.add_argument(old, dest=dest, action=_Deprecated, message=message, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kw)


# ------------------------------------------------------------------------------ help
class HelpFormatter(argparse.HelpFormatter):
    """Each flag's default, once: shown as "(default: X)" unless there is none (None, off) or the help states it already."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if (not action.option_strings or d is None or d is False or d is argparse.SUPPRESS or d == [] or d == ""
                or "default" in text.lower() or "%(default)" in text):
            return text
        return f"{text} (default: %(default)s)"


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
