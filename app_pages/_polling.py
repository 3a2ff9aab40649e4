"""How often a page polls: the refresh interval of job panels and the sidebar, fitted to the jobs
running and to how many browser sessions share the server."""

from __future__ import annotations

import time

import streamlit as st

from core.jobs import INTERACTIVE_LANE
from app_pages._manager import manager
from app_pages._serving import session_id
from app_pages._identity import owner_key

# How often job panels refresh (seconds). Each refresh re-runs a fragment in the server's process
# and makes the browser re-render the page (about 0.2 s of a CPU core per refresh measured in
# headless Chromium on the 2-core machine, whatever the fragment holds), and on a small CPU both
# take time from a training on the same machine (bench/app_jobs.py measures it): 1 s while an
# interactive job (a preview, a small sweep) is queued or running, so its result shows at once;
# 10 s while only training-lane jobs run (their progress, ETA and latest loss; trainings last
# minutes to hours); 15 s when nothing runs (a job started in another tab shows up).
POLL_FAST_S = 1.0
POLL_S = 10.0
POLL_IDLE_S = 15.0
# A running job's loss curve and preview are redrawn this often (seconds), in their own fragment:
# the browser redraws a Plotly chart on every refresh of the fragment that holds it, the biggest
# cost of a refresh; the progress bar, step, ETA and latest loss still refresh every POLL_S.
CURVE_EVERY_S = 15.0
# With a class on one server every open tab polls, so the training loses a little to each of them
# (bench/app_load.py): past CROWD sessions seen in the last SEEN_S seconds the training-lane
# intervals (POLL_S, CURVE_EVERY_S) stretch by a factor 2 or 4, keeping the server's total refresh
# rate about that of CROWD sessions. The 1 s interval is only for a session's own interactive job.
CROWD = 2
SEEN_S = 60.0


@st.cache_resource
def _sessions_seen() -> dict:
    """Server-wide: browser session id -> when it last asked for a refresh interval."""
    return {}


def crowd_factor(now: float | None = None) -> int:
    """1, 2 or 4: how much the training-lane refresh intervals stretch for the sessions open now
    (seen within SEEN_S): up to CROWD sessions 1, up to 2·CROWD 2, more 4. Notes this session."""
    now = time.time() if now is None else now
    seen = _sessions_seen()
    me = session_id()
    if me is not None:
        seen[me] = now
    for sid, t in list(seen.items()):
        if now - t > SEEN_S:
            seen.pop(sid, None)
    n = len(seen)
    return 1 if n <= CROWD else 2 if n <= 2 * CROWD else 4


def poll_every() -> float:
    """The refresh interval that fits the jobs now queued or running (see POLL_S): fast only
    while this session's own interactive job runs; stretched by ``crowd_factor`` otherwise."""
    active = manager().active()
    factor = crowd_factor()
    if not active:
        return POLL_IDLE_S * factor
    me = owner_key()
    if any(j.lane == INTERACTIVE_LANE and j.owner in (None, me) for j in active):
        return POLL_FAST_S
    return POLL_S * factor


def curve_every() -> float:
    """How often the running curves are redrawn (CURVE_EVERY_S, stretched like poll_every)."""
    return CURVE_EVERY_S * crowd_factor()
