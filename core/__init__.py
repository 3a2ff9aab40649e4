"""Imbalance Lab core: data, imbalance profiles, generators, training, metrics, runs.

Everything here is plain Python/PyTorch: no Streamlit, no threads. The app's pages and
the CLI (`python -m core ...`) are thin layers over these modules.
"""

__version__ = "0.1.0"
