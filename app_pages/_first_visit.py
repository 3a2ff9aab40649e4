"""The first-visit strip: four steps through the lab, each linked to its page, until dismissed.

Its state lives in the browser, not in the server's workspace (one server serves a whole
class): dismissing sets a cookie with a small script, and a later visit reads it from
``st.context.cookies`` (sent with the page request). Within the session that dismissed it,
session state hides it at once.
"""

from __future__ import annotations

import streamlit as st

COOKIE = "imbalance_lab_intro"
DISMISSED = "dismissed"
SESSION_KEY = "_intro_dismissed"
STUDY_PAGE = "app_pages/study.py"
STEPS = [
    ("app_pages/dataset.py", "1 · The data and its imbalance", ":material/database:"),
    ("app_pages/train.py", "2 · Train a generator", ":material/model_training:"),
    ("app_pages/guidance.py", "3 · Look at guidance", ":material/tune:"),
    (STUDY_PAGE, "4 · Run the quick study", ":material/science:"),
]
# One year; SameSite=Lax: sent with the page's own requests only.
SET_COOKIE = f"<script>document.cookie = '{COOKIE}={DISMISSED}; path=/; max-age=31536000; SameSite=Lax';</script>"


def _cookies():
    """This browser's cookies, as sent with its page request."""
    return st.context.cookies


def dismissed() -> bool:
    """Dismissed in this session, or earlier in this browser (its cookie)."""
    return bool(st.session_state.get(SESSION_KEY)) or _cookies().get(COOKIE) == DISMISSED


def _dismiss() -> None:
    st.session_state[SESSION_KEY] = True
    st.session_state["_intro_set_cookie"] = True


def first_visit_strip() -> None:
    """The strip above the page, on a browser's first visits, until its "Got it" is pressed."""
    if st.session_state.pop("_intro_set_cookie", False):
        st.html(SET_COOKIE, unsafe_allow_javascript=True)  # remembered by this browser, not by the server
    if dismissed():
        return
    with st.container(border=True, key="first_visit"):
        head, close = st.columns([6, 1], vertical_alignment="center")
        head.markdown("**New here?** Four steps through the lab, each a few minutes on a laptop CPU:")
        close.button("Got it, hide this", key="intro_dismiss", icon=":material/close:", on_click=_dismiss)
        cols = st.columns(len(STEPS))
        for col, (page, label, icon) in zip(cols, STEPS):
            col.page_link(page, label=label, icon=icon)
