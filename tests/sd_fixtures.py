"""Fixtures shared by the Stable Diffusion tests (imported into each SD test module)."""

import pytest
import torch

from core.generators import sd
from core.paths import models_dir


@pytest.fixture(scope="session")
def tiny_sd():
    """A randomly initialised miniature SD pipeline saved where a user's download would go."""
    folder = models_dir() / "tiny-sd"
    if not (folder / "model_index.json").exists():
        sd.build_tiny_pipeline(folder)
    return folder


@pytest.fixture(autouse=True)
def one_thread():
    # 2 shared cores: OpenMP threads spinning against other processes make tiny convs ~100x slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
