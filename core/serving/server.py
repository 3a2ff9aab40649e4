"""Serving the lab to a class: data roots, job limits, the bound address and the access token.

Pure functions of paths and the environment (no Streamlit): the app and the launcher
(``python -m core app``) call them; the CLI's own commands do not, since the local user
may read any folder they can.

* **Data roots.** Every folder the *server* reads for a page or a job must resolve, after
  symlinks, inside one of the roots: ``IMBALANCE_LAB_DATA_ROOTS`` (a list separated by
  ``os.pathsep``, ``:`` on Linux), plus ``cache_dir()`` always (uploads and extracted zips
  live there). Unset, the roots are ``cache_dir()``, ``../shared/data`` beside the project
  when it exists and the project's ``data/`` when it exists.
* **Job limits.** Queued or running jobs per browser session and per server, and a smaller
  limit for the interactive lane (previews), from ``IMBALANCE_LAB_MAX_JOBS_PER_SESSION``
  (4), ``IMBALANCE_LAB_MAX_JOBS`` (16) and ``IMBALANCE_LAB_MAX_INTERACTIVE_PER_SESSION`` (2).
* **Exposure.** A non-loopback address serves everyone who reaches the port: the launcher
  then insists on explicit roots and prints what it exposes; ``IMBALANCE_LAB_TOKEN`` is an
  optional shared access token the app asks for once per session.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from core.errors import ConfigError, DataError
from core.paths import PROJECT_ROOT, cache_dir, runs_dir

ROOTS_VAR = "IMBALANCE_LAB_DATA_ROOTS"
TOKEN_VAR = "IMBALANCE_LAB_TOKEN"
HOST_VAR = "IMBALANCE_LAB_HOST"  # set by the launcher for the server it starts
SHARED_VAR = "IMBALANCE_LAB_SHARED"  # "1": serve as shared even on loopback (behind a reverse proxy); the launcher's --shared
PER_SESSION_VAR = "IMBALANCE_LAB_MAX_JOBS_PER_SESSION"
PER_SERVER_VAR = "IMBALANCE_LAB_MAX_JOBS"
INTERACTIVE_VAR = "IMBALANCE_LAB_MAX_INTERACTIVE_PER_SESSION"
INTERACTIVE_SERVER_VAR = "IMBALANCE_LAB_MAX_INTERACTIVE"  # the interactive lane, whole server: while it is busy, trainings pause
DOWNLOADS_VAR = "IMBALANCE_LAB_ALLOW_DOWNLOADS"  # "1": a shared server may download torchvision sets for its users
USERS_DIR = "users"  # cache_dir()/users/<identity>/: that identity's uploads and extracted zips


# ------------------------------------------------------------------------------ data roots
def _resolved(p: str | os.PathLike) -> Path:
    return Path(p).expanduser().resolve()


def default_roots() -> list[Path]:
    """The roots without ``IMBALANCE_LAB_DATA_ROOTS``: cache_dir(), then ../shared/data and data/ if present."""
    out = [cache_dir()]
    out += [p for p in (PROJECT_ROOT.parent / "shared" / "data", PROJECT_ROOT / "data") if p.is_dir()]
    return [_resolved(p) for p in out]


def roots_explicit(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool((env.get(ROOTS_VAR) or "").strip())


def data_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """The folders the server may read data from, resolved, without duplicates (order kept)."""
    env = os.environ if env is None else env
    raw = (env.get(ROOTS_VAR) or "").strip()
    roots = [_resolved(cache_dir())] + [_resolved(p) for p in raw.split(os.pathsep) if p.strip()] if raw else default_roots()
    return list(dict.fromkeys(roots))


def inside_roots(path: str | os.PathLike, roots: Iterable[Path]) -> bool:
    """True when ``path``, with symlinks and ``..`` resolved, is a root or lies under one.

    Compared part by part (``Path.is_relative_to``), so /data-evil is not under /data.
    """
    p = _resolved(path)
    return any(p == r or p.is_relative_to(r) for r in roots)


def user_dir(owner: str) -> Path:
    """One identity's own folder under the cache (its uploads and their extracted copies)."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in str(owner))[:64] or "_"
    return cache_dir() / USERS_DIR / safe


def private_folder(path: str | os.PathLike, own: Path | None) -> bool:
    """True when ``path`` lies in the cache but outside ``own`` (an identity's folder): on a shared
    server the cache is not a data root, only each identity's own folder in it is (for that identity)."""
    p, cache = _resolved(path), _resolved(cache_dir())
    if not (p == cache or p.is_relative_to(cache)):
        return False
    return own is None or not (p == _resolved(own) or p.is_relative_to(_resolved(own)))


def check_data_dir(path: str | os.PathLike | None, roots: list[Path] | None = None, own: Path | None = None, shared: bool = False) -> None:
    """Raise a DataError naming ``IMBALANCE_LAB_DATA_ROOTS`` unless ``path`` is inside the roots.

    ``shared``: the cache folder is no data root, except ``own`` (the asking identity's folder;
    ``user_dir``), so nobody reads another's uploads. The message names only the path asked for
    and the roots, never what the folder holds.
    """
    if path is None or str(path).strip() == "":
        return
    if "\0" in str(path):  # no file system takes it (os.stat raises ValueError): refused as a path, not a crash
        raise DataError(f"The folder {str(path)[:80]!r} holds a NUL character, so it names no folder; nothing was opened.",
                        "Type the folder's path without control characters.")
    roots = data_roots() if roots is None else roots
    if shared and private_folder(path, own):
        raise DataError(f"The folder '{path}' is in the server's cache, outside your own uploads, so nothing in it was opened.",
                        "Upload your data as a zip on the Dataset page (it goes to your own folder), or use a folder under "
                        f"the data roots ({ROOTS_VAR}).")
    if not inside_roots(path, roots):
        raise DataError(
            f"The folder '{path}' is outside the data folders this server may read, so nothing in it was opened.",
            f"Put the data under one of: {', '.join(map(str, roots))} (or upload it as a zip); the person running "
            f"the server can add folders with the {ROOTS_VAR} environment variable (a '{os.pathsep}'-separated list).",
        )


def downloads_allowed(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return (env.get(DOWNLOADS_VAR) or "").strip() == "1"


def model_refs_in(config) -> list[str]:
    """Every ``model`` value (an SD hub id or a pipeline folder) anywhere in a (nested) job config."""
    return values_in(config, "model")


def check_model_ref(ref: str, roots: list[Path], known: Iterable[str], downloads: bool) -> None:
    """On a shared server: a model folder must resolve inside the data roots or the models folder
    (``roots``); a hub id must be one the lab knows (``known``) unless downloads are allowed."""
    looks_like_path = ref.startswith(("/", "~", ".", "\\")) or Path(ref).expanduser().exists()
    if looks_like_path:
        if not inside_roots(ref, roots):
            raise DataError(f"The model folder '{ref}' is outside the folders this server may read, so it was not opened.",
                            f"Use a model under one of: {', '.join(map(str, roots))}, or one the lab knows by its hub id.")
    elif ref not in set(known) and not downloads:
        raise DataError(f"The model '{ref}' is not one this server offers, and it does not download models for its users; nothing was started.",
                        f"Use one of: {', '.join(sorted(set(known)))}; the person running the server can allow downloads with {DOWNLOADS_VAR}=1.")


def data_dirs_in(config) -> list[str]:
    """Every ``data_dir`` value anywhere in a (nested) job config."""
    return values_in(config, "data_dir")


def values_in(config, key: str) -> list[str]:
    """Every path-like value of ``key`` anywhere in a (nested) config."""
    out: list[str] = []
    if isinstance(config, dict):
        for k, v in config.items():
            out += [str(v)] if k == key and isinstance(v, (str, os.PathLike)) else values_in(v, key)
    elif isinstance(config, (list, tuple)):
        for v in config:
            out += values_in(v, key)
    return out


# ------------------------------------------------------------------------------ job limits
@dataclass(frozen=True)
class JobLimits:
    """Queued-or-running jobs allowed: per owner (a browser session, or a signed-in person) and per
    server on the training lane, and per owner and per server on the interactive lane (counted
    apart; its jobs are short, but every training on a device pauses while it is busy)."""

    per_session: int = 4
    per_server: int = 16
    interactive_per_session: int = 2
    interactive_per_server: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "JobLimits":
        env = os.environ if env is None else env
        vals = {}
        for field_, var in (("per_session", PER_SESSION_VAR), ("per_server", PER_SERVER_VAR), ("interactive_per_session", INTERACTIVE_VAR),
                            ("interactive_per_server", INTERACTIVE_SERVER_VAR)):
            raw = (env.get(var) or "").strip()
            if not raw:
                continue
            try:
                n = int(raw)
            except ValueError:
                n = 0
            if n < 1:
                raise ConfigError(f"{var}={raw!r} is not a whole number of jobs of at least 1.", f"Set {var} to e.g. {getattr(cls, field_)}, or unset it.")
            vals[field_] = n
        return cls(**vals)

    def refusal(self, interactive: bool, session_active: int, server_active: int) -> tuple[str, str] | None:
        """(problem, fix) when one more job may not be queued, given the jobs of its lane already
        queued or running in this session and on the server; None when it may."""
        if interactive:
            if session_active >= self.interactive_per_session:
                return (f"This browser session already has {session_active} preview(s) queued or running; the limit is "
                        f"{self.interactive_per_session} ({INTERACTIVE_VAR}). Nothing was started.",
                        "Wait for one to finish or cancel it, then try again.")
            if server_active >= self.interactive_per_server:  # a few tabs must not hold every training paused
                return (f"The server already has {server_active} previews queued or running from everyone; the limit is "
                        f"{self.interactive_per_server} ({INTERACTIVE_SERVER_VAR}). Nothing was started.",
                        "Try again in a moment: previews are short.")
            return None
        if session_active >= self.per_session:
            return (f"This browser session already has {session_active} jobs queued or running; the limit is {self.per_session} "
                    f"({PER_SESSION_VAR}). Nothing was started.", "Wait for one to finish or cancel one, then try again.")
        if server_active >= self.per_server:
            return (f"The server already has {server_active} jobs queued or running from all sessions; the limit is {self.per_server} "
                    f"({PER_SERVER_VAR}). Nothing was started.", "Try again when one of them has finished.")
        return None


# -------------------------------------------------------------------------------- exposure
def is_loopback(host: str | None) -> bool:
    """True for addresses only this machine reaches (127.x, ::1, localhost). An empty host or
    0.0.0.0 listens on every interface, and any other name may resolve outwards: False."""
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a typed token with IMBALANCE_LAB_TOKEN."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def exposure_summary(host: str, port: int, env: Mapping[str, str] | None = None) -> str:
    """What a server on ``host:port`` exposes, in a few lines for the launcher to print."""
    env = os.environ if env is None else env
    lim = JobLimits.from_env(env)
    lines = [f"Imbalance Lab on http://{host}:{port}/ - every machine that reaches this address can use the lab:",
             "  data it may read (" + ROOTS_VAR + "): " + ", ".join(map(str, data_roots(env))),
             f"  runs it writes and shows to every session: {env.get('IMBALANCE_LAB_RUNS') or runs_dir()}",
             f"  jobs: at most {lim.per_session} per person (or browser session), {lim.per_server} on the server, "
             f"{lim.interactive_per_session} previews per person, {lim.interactive_per_server} on the server",
             "  access token (" + TOKEN_VAR + "): " + ("required, once per browser session" if env.get(TOKEN_VAR) else "none: anyone who reaches the port gets in"),
             "  workspace: per browser session (the server-wide .cache/workspace.json is neither read nor written)"]
    return "\n".join(lines)
