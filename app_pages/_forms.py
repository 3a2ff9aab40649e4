"""Forms: values remembered across page switches and tabs, the guarded submit (a duplicate of a
job still queued or running asks first), and the optional parts a form offers (a core module that
may not import here, e.g. Stable Diffusion without its extras)."""

from __future__ import annotations

import importlib
import time

import streamlit as st

from core.errors import LabError
from core.jobs import Job
from core.serving import workspace
from app_pages._dataset import _load_workspace
from app_pages._manager import manager
from app_pages._serving import shared_server


def form_memory(form: str) -> dict:
    """The values last submitted in ``form`` (this session, else the saved workspace), {} if none.

    Widgets use these as their defaults, so a form keeps the user's values after a page
    switch (Streamlit forgets a widget's state once it is not rendered) and across tabs.
    """
    mem = st.session_state.setdefault("_forms", {})
    if form not in mem:
        mem[form] = dict((_load_workspace().get("forms") or {}).get(form) or {})
    return mem[form]


def remember_form(form: str, values: dict) -> None:
    mem = st.session_state.setdefault("_forms", {})
    mem[form] = {**mem.get(form, {}), **values}
    if shared_server():
        return
    forms = dict(workspace.load().get("forms") or {})
    forms[form] = mem[form]
    workspace.save(forms=forms)


def set_page(title: str) -> None:
    """app.py names the page being shown; jobs submitted from it record that page (core.store.provenance)."""
    st.session_state["_page"] = title


def page_name() -> str | None:
    return st.session_state.get("_page")


def submit_job(kind: str, config: dict, name: str, key: str, force: bool = False) -> Job | None:
    """Queue a job unless an identical one was submitted in the last minute and is still queued
    or running: then remember it as pending and let ``confirm_pending(key)`` ask the user."""
    mgr = manager()
    dup = None if force else workspace.recent_duplicate(mgr.jobs(), kind, config)
    if dup is not None:
        st.session_state[f"{key}_pending"] = {"kind": kind, "config": config, "name": name, "dup": dup.id,
                                              "ago": round(time.time() - dup.submitted)}
        return None
    try:
        job = mgr.submit(kind, config, name=name, page=page_name())
    except LabError as exc:
        st.error(str(exc))
        return None
    st.session_state.pop(f"{key}_pending", None)
    return job


def confirm_pending(key: str) -> Job | None:
    """The confirmation box for a duplicate submission of ``key``'s form; the job if confirmed."""
    pending = st.session_state.get(f"{key}_pending")
    if not pending:
        return None
    with st.container(border=True):
        st.warning(f"An identical {pending['kind']} job (`{pending['dup']}`) was submitted {pending['ago']} s ago and is still "
                   "queued or running. Start another copy anyway?")
        c = st.columns(2)
        yes = c[0].button("Start anyway", key=f"{key}_dup_yes")
        no = c[1].button("Don't start it", key=f"{key}_dup_no")
    if no:
        st.session_state.pop(f"{key}_pending", None)
        st.rerun()
    if yes:
        st.session_state.pop(f"{key}_pending", None)
        return submit_job(pending["kind"], pending["config"], pending["name"], key, force=True)
    return None


def optional(module: str):
    """Import a core module that may not have landed yet: (module, None) or (None, reason)."""
    try:
        return importlib.import_module(module), None
    except ImportError as exc:
        return None, f"{module} is not available yet ({type(exc).__name__}: {exc})."
