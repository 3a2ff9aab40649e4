"""Test-session environment: offline, and runs/models in temp folders.

Set before any ``core`` import so ``core.paths`` sees them. The decoded-dataset cache
(.cache/) is shared with normal use so CIFAR-10 is decoded once per machine.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_session_tmp = Path(tempfile.mkdtemp(prefix="imbalance-lab-tests-"))
os.environ["IMBALANCE_LAB_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("IMBALANCE_LAB_RUNS", str(_session_tmp / "runs"))
os.environ.setdefault("IMBALANCE_LAB_MODELS", str(_session_tmp / "models"))
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")

import pytest  # noqa: E402

CIFAR_DIR = ROOT.parent / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    if not (CIFAR_DIR / "train").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CIFAR-10 copy missing at {CIFAR_DIR}; CI must provide ../shared/data/cifar10")
        pytest.skip(f"CIFAR-10 copy not found at {CIFAR_DIR}")
    return CIFAR_DIR


@pytest.fixture()
def runs_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("IMBALANCE_LAB_RUNS", str(root))
    return root
