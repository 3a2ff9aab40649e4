"""Who this browser is, on a server shared by a class (core.serving.identity): the sign-in gate, the
identity that owns jobs and uploads, and who may see or change a run.

* With a tokens file (``IMBALANCE_LAB_USERS``), each person types their own token once. The
  page then sets a signed cookie (``core.serving.identity.issue_cookie``) with a line of JavaScript
  (``st.html(..., unsafe_allow_javascript=True)``: Streamlit can read cookies but not set
  them); a reload or a new tab sends it with its WebSocket, and ``st.context.cookies`` reads
  it, so the person is not asked again. The identity lives in ``session_state``.
* Without one, ``IMBALANCE_LAB_TOKEN`` is a shared token as before, and each browser session
  is its own identity (a reload starts a new one).
* In shared mode a token in the URL (``?token=``) is refused and removed: a link's token lands
  in browser history and proxy logs before the page can remove it. Wrong tokens are limited
  per client (``core.serving.identity.RateLimiter``).
* A one-user server (loopback, no tokens file) keeps every run visible and changes nothing.
"""

from __future__ import annotations

import json
import os

import streamlit as st

from core.serving import identity, server as serving
from core.paths import cache_dir

USER_KEY = "_lab_user"
SIGNED_OUT = "_lab_signed_out"
TOKEN_OK = "_lab_token_ok"
COOKIE_SET = "_lab_cookie_value"
COOKIE_CLEAR = "_lab_cookie_clear"


def session_id() -> str | None:
    """This browser session's id (Streamlit's), None outside a script run (a worker thread)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else None


def shared_server() -> bool:
    """True when the server listens beyond this machine (the launcher's host, else server.address):
    then every browser session keeps its own workspace and the server-wide file is left alone.
    ``IMBALANCE_LAB_SHARED=1`` (the launcher's --shared: behind a reverse proxy) says so on loopback."""
    if os.environ.get(serving.SHARED_VAR) == "1":
        return True
    host = os.environ.get(serving.HOST_VAR)
    if host is None:
        host = st.get_option("server.address")
    return not serving.is_loopback(host)


def users() -> dict[str, identity.User] | None:
    return identity.load_users()


def current_user() -> identity.User | None:
    """The person signed in in this browser session (still in the tokens file), else None."""
    name = st.session_state.get(USER_KEY)
    us = users() if name else None
    return us.get(name) if us else None


def strict() -> bool:
    """Whether runs, jobs and uploads are kept apart by identity: a shared server, or a tokens file."""
    return shared_server() or bool(os.environ.get(identity.USERS_VAR))


def owner_key() -> str | None:
    """The identity that owns what this session starts: the signed-in person, else the browser
    session (None outside a script run). The job manager's ``owner_fn``."""
    if session_id() is None:
        return None
    user = current_user()
    return user.name if user is not None else session_id()


def is_teacher() -> bool:
    user = current_user()
    return bool(user and user.teacher)


def may_see(run_owner: str | None) -> bool:
    """Whether this session may see a run owned by ``run_owner`` (``Run.owner``): everyone on a
    one-user server; otherwise its owner, and a teacher (read-only)."""
    if not strict():
        return True
    return is_teacher() or (run_owner is not None and run_owner == owner_key())


def may_cancel(job_owner: str | None) -> bool:
    """Whether this session may cancel a job owned by ``job_owner``. A one-user server keeps its rule
    (the tab that started it, or a job with no owner); otherwise only the owner, never the teacher."""
    if not strict():
        return job_owner in (None, session_id())
    return job_owner is not None and job_owner == owner_key()


def may_resume(run_owner: str | None) -> bool:
    return (not strict()) or (run_owner is not None and run_owner == owner_key())


def resume_owner() -> str | None:
    """What the page passes to ``JobManager.resume(owner=...)``: the identity when kept apart (the
    manager then checks it and keeps the run's owner), None on a one-user server (as before)."""
    return owner_key() if strict() else None


def upload_folder():
    """Where this identity's uploads go: its own folder in the cache when kept apart, the cache
    itself on a one-user server (as before)."""
    return serving.user_dir(owner_key() or "_") if strict() else cache_dir()


def own_folder():
    """The part of the cache this identity may read data from: its own folder (a teacher: every
    identity's), the whole cache on a one-user server."""
    if not strict():
        return cache_dir()
    return cache_dir() / serving.USERS_DIR if is_teacher() else upload_folder()


def check_dir(path) -> None:
    """``serving.check_data_dir`` for this identity: the roots, and on a shared server no one else's uploads."""
    serving.check_data_dir(path, own=own_folder() if strict() else None, shared=strict())


def visible(runs: list) -> list:
    """The runs this session may see (``may_see``), in their order."""
    if not strict():
        return runs
    return [r for r in runs if may_see(r.owner)]


# ---------------------------------------------------------------------------------- the gate
@st.cache_resource(show_spinner=False)
def _limiter() -> identity.RateLimiter:
    return identity.RateLimiter()  # server-wide: one count per client, whatever its tabs


def client_key() -> str:
    """The client a failed attempt counts against: the first X-Forwarded-For address (behind a
    proxy), else the connection's address, else "local"."""
    try:
        fwd, ip = st.context.headers.get("X-Forwarded-For"), st.context.ip_address
    except Exception:  # outside a browser session
        return "local"
    fwd = fwd.split(",")[0].strip() if isinstance(fwd, str) else ""
    return fwd or (ip if isinstance(ip, str) and ip else "local")  # (AppTest's context gives mocks: "local")


def client_cookies() -> dict:
    try:
        return dict(st.context.cookies)
    except Exception:
        return {}


def _script(cookie: str) -> None:
    st.html(f"<script>document.cookie = {json.dumps(cookie)};</script>", unsafe_allow_javascript=True)


def _check(typed: str, match) -> bool:
    """One attempt, rate-limited per client; shows why it failed. ``match(typed)``: accepted?"""
    lim, client = _limiter(), client_key()
    wait = lim.wait_s(client)
    if wait > 0:
        st.error(f"Too many wrong tokens from this address: wait {wait:.0f} s before trying again "
                 f"(at most {lim.max_failures} attempts per {lim.window_s:g} s).")
        return False
    if match(typed):
        lim.succeeded(client)
        return True
    lim.failed(client)
    st.error("That is not this server's access token (nor anyone's personal one). Check it with the person running the server.")
    return False


def gate() -> None:
    """Before any page renders: sign in (tokens file) or the shared token; nothing when neither is set."""
    shared = shared_server()
    if shared and "token" in st.query_params:
        del st.query_params["token"]
        st.session_state["_lab_url_token"] = True
    try:
        us = users()
    except Exception as exc:  # a malformed tokens file: nobody gets in until it is fixed
        st.error(str(exc))
        st.stop()
    expected = os.environ.get(serving.TOKEN_VAR)
    if us is None and not expected:
        return
    if us is not None and current_user() is not None:
        return _signed_in_bar()
    if us is None and st.session_state.get(TOKEN_OK):
        return
    if us is not None and not st.session_state.get(SIGNED_OUT):
        found = identity.verify_cookie(client_cookies().get(identity.COOKIE), us)
        if found is not None:
            st.session_state[USER_KEY] = found.name
            return _signed_in_bar()
    elif not shared and serving.token_matches(st.query_params.get("token"), expected):
        st.session_state[TOKEN_OK] = True  # a one-user server keeps taking a linked token once
        del st.query_params["token"]
        return
    _prompt(us, expected)


def _prompt(us, expected) -> None:
    st.title("Imbalance Lab")
    if st.session_state.pop(COOKIE_CLEAR, False):
        _script(f"{identity.COOKIE}=; Max-Age=0; Path=/; SameSite=Strict")
    if st.session_state.get("_lab_url_token"):
        st.error("A token in the address (?token=…) is refused on this server: links end up in browser history and proxy logs. "
                 "It was removed; type it below instead.")
    what = "Your personal access token" if us is not None else "Access token"
    # no st.form: Enter in the field checks the token (it starts nothing)
    typed = st.text_input(what, type="password", key="lab_token",
                          help=f"The person running this server gave you one ({identity.USERS_VAR if us is not None else serving.TOKEN_VAR}); ask them for it.")
    st.button("Enter", type="primary", key="lab_token_go")
    if typed:
        if us is not None:
            found: list = []
            if _check(typed, lambda t: found.append(identity.match_token(t, us)) or found[-1] is not None):
                st.session_state[USER_KEY] = found[-1].name
                st.session_state[COOKIE_SET] = identity.issue_cookie(found[-1])
                st.session_state.pop("_lab_url_token", None)
                st.session_state.pop(SIGNED_OUT, None)
                st.rerun()
        elif _check(typed, lambda t: serving.token_matches(t, expected)):
            st.session_state[TOKEN_OK] = True
            st.session_state.pop("_lab_url_token", None)
            st.rerun()
    st.stop()


def _signed_in_bar() -> None:
    user = current_user()
    value = st.session_state.get(COOKIE_SET)
    if value and client_cookies().get(identity.COOKIE) != value:
        # a new tab or a reload sends this cookie; kept on the page until the browser has it
        with st.sidebar:
            _script(f"{identity.COOKIE}={value}; Max-Age={identity.COOKIE_DAYS * 86400}; Path=/; SameSite=Strict")
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}**" + (" (teacher: you see everyone's work, read-only)" if user.teacher else ""))
        if st.button("Sign out", key="lab_sign_out"):
            for k in (USER_KEY, COOKIE_SET, TOKEN_OK):
                st.session_state.pop(k, None)
            st.session_state[COOKIE_CLEAR] = st.session_state[SIGNED_OUT] = True
            st.rerun()
