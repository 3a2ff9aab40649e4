"""Figures: pure plotly/numpy builders for the app and the reports (no Streamlit)."""
