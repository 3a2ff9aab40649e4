"""Imbalance Lab: the Streamlit app. ``streamlit run app.py`` (or ``make run``).

Pages live in pages/ and stay thin: they call ``core`` and hand long work to the job
manager (background threads), never training in the script thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # AppTest and odd launch folders: make `core` and `pages` importable
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from pages._common import dataset_caption, sidebar_jobs  # noqa: E402

st.set_page_config(page_title="Imbalance Lab", page_icon=":material/balance:", layout="wide")

PAGES = [
    st.Page("pages/dataset.py", title="Dataset", icon=":material/database:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/generate.py", title="Generate", icon=":material/auto_awesome:"),
    st.Page("pages/guidance.py", title="Guidance explorer", icon=":material/tune:"),
    st.Page("pages/results.py", title="Results", icon=":material/bar_chart:"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.caption(dataset_caption())
sidebar_jobs()
page.run()
