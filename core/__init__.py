"""Imbalance Lab core: data, imbalance profiles, generators, training, metrics, runs.

Everything here is plain Python/PyTorch: no Streamlit, no threads. The app's pages and
the CLI (`python -m core ...`) are thin layers over these modules.
"""

__version__ = "0.1.0"

# -- entry points for notebooks and scripts -------------------------------------------------
# ``core.train_cfg(...)`` etc. resolve on first use (PEP 562 module __getattr__), so ``import core``
# stays cheap (no torch) and the package's own __init__ imports nothing: the names are module paths
# as strings, resolved by importlib, which keeps it on the bottom row ("base") of the layer table in
# docs/architecture.md that tests/test_imports.py checks.
_ENTRY_POINTS = {
    "DataConfig": "core.data.loading", "load_dataset": "core.data.loading", "prepare": "core.data.loading",
    "CFGTrainConfig": "core.train.cfg_unet", "train_cfg": "core.train.cfg_unet",
    "CFGGenerator": "core.generators.cfg", "save_samples": "core.generators.cfg", "load_samples": "core.generators.cfg",
    "balanced_train_set": "core.generators.balance",
    "ClassifierConfig": "core.train.classifier", "train_classifier": "core.train.classifier",
    "StudyConfig": "core.study.config", "run_study": "core.study.run", "load_results": "core.study.run",
    "study_preset": "core.study.presets:preset",
    "export_generator": "core.generators.export",
    "Callbacks": "core.callbacks", "ProgressBar": "core.callbacks",
}


def __getattr__(name: str):
    target = _ENTRY_POINTS.get(name)
    if target is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    import importlib

    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_ENTRY_POINTS])
