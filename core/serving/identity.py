"""Who is asking, on a server shared by a class: per-person tokens, a signed cookie, a rate limit.

No Streamlit here (app_pages/_serving.py wires it in):

* **The tokens file** (``IMBALANCE_LAB_USERS``), written by the teacher, one TOML table per
  person::

      [alice]
      token = "a-long-random-string"      # at least 12 characters, unique

      [ms-lovelace]
      token = "another-long-string"
      teacher = true                      # sees everyone's runs, studies and uploads, read-only

  A name is 1-40 letters, digits, ``.``, ``_`` or ``-`` (it names the person's upload folder).
* **Identity that survives reloads and new tabs.** Streamlit reads cookies
  (``st.context.cookies``, sent with the page's WebSocket) but cannot set them, so after the
  token is typed once the page sets, with a line of JavaScript, a cookie holding
  ``name.issued.signature``: an HMAC-SHA256 of the name and time, keyed with that person's
  token. A new tab or a reload sends it; ``verify_cookie`` checks it against the tokens file,
  so changing someone's token in the file (or removing them) ends their cookies, and nothing
  about the server needs keeping between restarts. It expires after ``COOKIE_DAYS`` days.
* **Failed attempts** are limited per client (``RateLimiter``): after ``MAX_FAILURES`` wrong
  tokens within ``WINDOW_S`` seconds, that client is refused for ``WINDOW_S`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from core.errors import ConfigError

USERS_VAR = "IMBALANCE_LAB_USERS"
COOKIE = "imbalance_lab_id"
COOKIE_DAYS = 14
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
MIN_TOKEN = 12
MAX_FAILURES = 5
WINDOW_S = 60.0


@dataclass(frozen=True)
class User:
    name: str
    token: str
    teacher: bool = False


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def parse_users(text: str, label: str = USERS_VAR) -> dict[str, User]:
    """The users of a tokens file's text; a ConfigError names the first problem and its fix."""
    fix = f"Write one table per person in {label}: [name] with token = \"…\" (≥ {MIN_TOKEN} characters) and optionally teacher = true."
    try:
        data = _toml().loads(text)
    except Exception as exc:  # tomllib.TOMLDecodeError
        raise ConfigError(f"{label} is not valid TOML ({exc}).", fix) from exc
    users: dict[str, User] = {}
    tokens: set[str] = set()
    for name, entry in data.items():
        if not NAME_RE.match(name):
            raise ConfigError(f"{label}: the name {name[:40]!r} is not 1-40 letters, digits, '.', '_' or '-'.", fix)
        if not isinstance(entry, dict) or set(entry) - {"token", "teacher"}:
            raise ConfigError(f"{label}: [{name}] must hold only token = \"…\" and teacher = true/false.", fix)
        token, teacher = entry.get("token"), entry.get("teacher", False)
        if not isinstance(token, str) or len(token) < MIN_TOKEN:
            raise ConfigError(f"{label}: [{name}] has no token of at least {MIN_TOKEN} characters.", fix)
        if not isinstance(teacher, bool):
            raise ConfigError(f"{label}: [{name}] teacher = {teacher!r} is not true or false.", fix)
        if token in tokens:
            raise ConfigError(f"{label}: [{name}] has the same token as another person; every token must be unique.", fix)
        tokens.add(token)
        users[name] = User(name, token, teacher)
    if not users:
        raise ConfigError(f"{label} names nobody.", fix)
    return users


_CACHE: dict[str, tuple[float, dict[str, User]]] = {}


def load_users(env: Mapping[str, str] | None = None) -> dict[str, User] | None:
    """The users of ``IMBALANCE_LAB_USERS`` (re-read when the file changes), None when it is unset."""
    env = os.environ if env is None else env
    raw = (env.get(USERS_VAR) or "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise ConfigError(f"{USERS_VAR}={raw} cannot be read ({exc.strerror}).", f"Point {USERS_VAR} at the tokens file, or unset it.") from exc
    hit = _CACHE.get(str(path))
    if hit is None or hit[0] != mtime:
        hit = (mtime, parse_users(path.read_text(encoding="utf-8"), f"{USERS_VAR} ({path})"))
        _CACHE[str(path)] = hit
    return hit[1]


def match_token(typed: str | None, users: Mapping[str, User]) -> User | None:
    """The user whose token was typed (every entry compared in constant time), else None."""
    found = None
    given = str(typed or "").encode()
    for user in users.values():
        if hmac.compare_digest(given, user.token.encode()) and given:
            found = user
    return found


def _signature(user: User, issued: int) -> str:
    return hmac.new(user.token.encode(), f"imbalance-lab-id:{user.name}:{issued}".encode(), hashlib.sha256).hexdigest()


def issue_cookie(user: User, now: float | None = None) -> str:
    """The cookie value that identifies ``user``: name.issued.signature (keyed with their token)."""
    issued = int(time.time() if now is None else now)
    return f"{user.name}.{issued}.{_signature(user, issued)}"


def verify_cookie(value: str | None, users: Mapping[str, User], now: float | None = None, max_age_s: float = COOKIE_DAYS * 86400) -> User | None:
    """The user a cookie names, when its signature holds with their current token and it is not expired."""
    if not value or value.count(".") < 2:
        return None
    name_issued, _, sig = value.rpartition(".")
    name, _, issued_text = name_issued.rpartition(".")
    user = users.get(name)
    try:
        issued = int(issued_text)
    except ValueError:
        return None
    now = time.time() if now is None else now
    if user is None or not (0 <= now - issued <= max_age_s):
        return None
    return user if hmac.compare_digest(sig.encode(), _signature(user, issued).encode()) else None


class RateLimiter:
    """Failed attempts per client: past ``max_failures`` within ``window_s``, the client waits ``window_s``."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S):
        self.max_failures, self.window_s = max_failures, window_s
        self._fails: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str, now: float | None = None) -> float:
        """Seconds this client must wait before another attempt counts (0: it may try now)."""
        now = time.time() if now is None else now
        with self._lock:
            recent = [t for t in self._fails.get(client, []) if now - t < self.window_s]
            self._fails[client] = recent
            if len(recent) < self.max_failures:
                return 0.0
            return max(0.0, self.window_s - (now - recent[-1]))

    def failed(self, client: str, now: float | None = None) -> None:
        with self._lock:
            self._fails.setdefault(client, []).append(time.time() if now is None else now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._fails.pop(client, None)
