"""Downloads of what the pages show: every Plotly chart's toolbar and every image grid.

* ``chart_config(name)`` is the ``config`` of every ``st.plotly_chart`` in the app (a test checks
  each call passes it): the toolbar's camera button downloads PNG at ≥ 1600 px wide, or SVG,
  rendered by plotly.js in the browser (no server-side renderer). plotly.js has one such button,
  so the sidebar's "Chart downloads" choice picks the format.
* ``grid_download(grid, name, key)`` puts a button beside an image grid that downloads it as PNG,
  upscaled 4× with nearest-neighbour (tiny 16-32 px images stay sharp).
"""

from __future__ import annotations

import re

import streamlit as st

from core.viz import figures as viz

FORMAT_KEY = "chart_format"
FORMATS = {"PNG (1600 px wide)": "png", "SVG (vector)": "svg"}


def export_format_picker() -> None:
    """The sidebar's choice of what chart toolbars download (kept for the session)."""
    st.sidebar.radio("Chart downloads (toolbar camera button)", list(FORMATS), key=FORMAT_KEY, horizontal=True,
                     help="plotly's toolbar downloads each chart as an image; PNG is rendered 1600 px wide")


def chart_config(name: str = "chart") -> dict:
    """plotly config for st.plotly_chart: the toolbar downloads this chart as ``name``.png (1600 px) or .svg."""
    fmt = FORMATS.get(st.session_state.get(FORMAT_KEY), "png")
    return viz.image_button_config(fmt, filename=_file_stem(name))


def grid_download(grid, name: str, key: str, where=None, scale: int = viz.GRID_EXPORT_SCALE) -> None:
    """A "Download PNG" button for an (H, W, 3) image grid, upscaled ``scale``× (nearest-neighbour).
    The PNG is made only when the button is pressed (a deferred callable), and pressing it does not
    rerun the page."""
    (where or st).download_button(f"Download PNG ({scale}×)", lambda: viz.grid_png(grid, scale), file_name=f"{_file_stem(name)}.png",
                                  mime="image/png", key=key, icon=":material/download:", on_click="ignore")


def _file_stem(name: str) -> str:
    return "imbalance-lab-" + (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "image")
