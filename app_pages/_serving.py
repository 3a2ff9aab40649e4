"""The app's side of serving a class (core.serving, core.bounds, core.data.budget):
the access token, this browser session's id, whether the workspace is shared, the data
guard every load and job goes through, and the one bounded number widget.
"""

from __future__ import annotations

import os

import streamlit as st

from core import bounds, serving
from core.data.budget import check_budget, estimate, refuse_over_budget

TOKEN_OK = "_lab_token_ok"


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


def token_gate() -> None:
    """With IMBALANCE_LAB_TOKEN set, ask for it once per browser session before any page renders.

    The answer is kept in session_state, so the pages' own URL rewriting cannot lose it.
    A link may carry it as ``?token=...`` (taken once, then removed from the URL).
    """
    expected = os.environ.get(serving.TOKEN_VAR)
    if not expected or st.session_state.get(TOKEN_OK):
        return
    if serving.token_matches(st.query_params.get("token"), expected):
        st.session_state[TOKEN_OK] = True
        del st.query_params["token"]
        return
    st.title("Imbalance Lab")
    # no st.form: Enter in the field checks the token (it starts nothing)
    typed = st.text_input("Access token", type="password", key="lab_token",
                          help=f"The person running this server set one ({serving.TOKEN_VAR}); ask them for it.")
    st.button("Enter", type="primary", key="lab_token_go")
    if typed:
        if serving.token_matches(typed, expected):
            st.session_state[TOKEN_OK] = True
            st.rerun()
        st.error("That is not this server's access token. Check it with the person running the server.")
    st.stop()


def guard_data(dataset: str, data_dir: str | None, image_size: int | None, stamp=None) -> None:
    """Raise a LabError before reading a folder outside the data roots or loading past the memory
    budget. The caller checks the roots (``serving.check_data_dir``) before it computes ``stamp``
    (a change marker of the folder, which reads it); the estimate is cached per stamp."""
    serving.check_data_dir(data_dir)
    refuse_over_budget(_estimate(dataset, data_dir, image_size, stamp), dataset)


@st.cache_data(max_entries=32, show_spinner=False)
def _estimate(dataset: str, data_dir: str | None, image_size: int | None, stamp):
    return estimate(dataset, data_dir, image_size)  # counting a folder's files walks it: once per change


def admit_job(kind: str, config: dict) -> None:
    """The app's check of a job before it is created: its data inside the roots, within the budget."""
    for d in serving.data_dirs_in(config):
        serving.check_data_dir(d)
    data = config.get("data")
    if isinstance(data, dict) and data.get("dataset"):
        check_budget(data["dataset"], data.get("data_dir"), data.get("image_size"))


def number(label: str, name: str, value, key: str, help: str | None = None, where=None, **kw):
    """st.number_input with the range of ``core.bounds.BOUNDS[name]``, stated in its help text.

    The default (a remembered or linked value) is clamped first, so an out-of-range value
    never raises StreamlitValueAboveMaxError. ``where``: a column or container (default st).
    """
    b = bounds.BOUNDS[name]
    lo, hi = (int(b.lo), int(b.hi)) if b.integer else (float(b.lo), float(b.hi))
    value = bounds.clamp_default(name, value)
    return (where or st).number_input(label, lo, hi, value, key=key, help=bounds.help_text(name, help), **kw)


def show_notes(notes: list[str]) -> None:
    """The URL's values that were clamped or ignored, once."""
    if notes:
        st.warning("The link's settings were adjusted: " + " ".join(notes))

