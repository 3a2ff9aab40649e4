"""Which torch device a job runs on: a device string from a config or the CLI -> ``torch.device``."""

from __future__ import annotations

import torch

from core.errors import ConfigError


def resolve_device(device: str | None) -> torch.device:
    """``None``/``""``/``"auto"`` = CUDA if available, else CPU; otherwise the named device,
    checked to exist (a clear ConfigError instead of a CUDA error later)."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"Unknown device '{device}'.", "Use cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device '{device}' was asked for but no CUDA GPU is available.", "Use --device cpu, or run on a machine with a GPU.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"Device '{device}' does not exist ({torch.cuda.device_count()} GPUs).", "Pick cuda:0 .. cuda:N-1.")
    return dev
