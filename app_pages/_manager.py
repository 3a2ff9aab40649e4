"""The app's one job manager (per runs folder), shared by every tab of this server process.

Jobs run in the manager's threads, never in the script thread. Importing this module imports
``core.jobs.runners``, which registers the lab's job kinds with ``core.jobs``.
"""

from __future__ import annotations

from dataclasses import astuple

import streamlit as st

import core.jobs.runners  # noqa: F401  importing it registers the lab's job kinds with core.jobs
from core.jobs import JobManager
from core.paths import runs_dir
from core.serving.server import JobLimits, data_dirs_in
from app_pages._serving import admission_check, admit_job
from app_pages._identity import owner_key


@st.cache_resource(show_spinner=False)
def _manager(root: str, limits: tuple[int, int, int]) -> JobManager:
    # every job records the browser session that started it, counts against its limits, and
    # has its data checked against the data roots and the memory budget (app_pages/_serving.py)
    # (the signed-in person on a server with a tokens file: app_pages/_identity.py)
    # memory and compute are admitted server-wide, counting the jobs already admitted (core.serving.admission)
    return JobManager(root=root, limits=JobLimits(*limits), owner_fn=owner_key, admit=admit_job, budget=admission_check)


def manager() -> JobManager:
    """The one JobManager of this server process (per runs folder), shared by every tab."""
    return _manager(str(runs_dir()), astuple(JobLimits.from_env()))


def paths_in_use() -> list[str]:
    """The data folders (and zips) of every job queued or running: the disk budget never evicts them."""
    return [d for j in manager().active() for d in data_dirs_in(j.run.config)]
