"""Imbalance Lab: the Streamlit app. ``streamlit run app.py`` (or ``make run``).

Pages live in app_pages/ and stay thin: they call ``core`` and hand long work to the job
manager (background threads), never training in the script thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The folder is app_pages/, not pages/: with a pages/ folder Streamlit starts in its old
# multipage mode, and the first request after a restart that deep-links to a page
# (e.g. /train) runs that page without this script: no navigation, no sidebar jobs.
ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # AppTest and odd launch folders: make `core` and `pages` importable
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app_pages._dataset import dataset_caption  # noqa: E402
from app_pages._forms import set_page  # noqa: E402
from app_pages._jobs import sidebar_jobs  # noqa: E402
from app_pages._export import export_format_picker  # noqa: E402
from app_pages._first_visit import first_visit_strip  # noqa: E402

st.set_page_config(page_title="Imbalance Lab", page_icon=":material/balance:", layout="wide")

# Serving a class: with a tokens file (IMBALANCE_LAB_USERS) each person signs in once (a signed
# cookie keeps them signed in across reloads and tabs); with IMBALANCE_LAB_TOKEN the shared token
# is asked once per browser session. Before any page renders (app_pages/_identity.py).
from app_pages._identity import gate  # noqa: E402

gate()

PAGES = [
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/database:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/generate.py", title="Generate", icon=":material/auto_awesome:"),
    st.Page("app_pages/guidance.py", title="Guidance explorer", icon=":material/tune:"),
    st.Page("app_pages/results.py", title="Results", icon=":material/bar_chart:"),
    st.Page("app_pages/study.py", title="Study", icon=":material/science:"),
]

page = st.navigation(PAGES)
set_page(page.title)
caption = st.sidebar.empty()
sidebar_jobs()
export_format_picker()
first_visit_strip()  # above every page until this browser dismisses it
try:
    page.run()
finally:
    # Filled after the page ran, so a change made on the Dataset page shows in this same run
    # (filled before, the caption lagged one change behind).
    caption.caption(dataset_caption())
