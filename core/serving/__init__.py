"""Serving the lab to a class on a shared server: data roots and limits, per-person identity,
admission (memory, compute, disk) and the app's URL workspace. No Streamlit here."""
