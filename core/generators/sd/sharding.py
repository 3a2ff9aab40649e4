"""Sharding a generation request across the processes of ``accelerate launch`` / torchrun."""

from __future__ import annotations

import os

import torch


def distribution():
    """(rank, world size, gather, device) under ``accelerate launch`` / torchrun; one process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, (lambda obj: [obj]), None
    from accelerate import PartialState
    from accelerate.utils import gather_object

    # without a GPU (or with `accelerate launch --cpu`) the processes talk over gloo on the CPU
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    state = PartialState(cpu=cpu)
    return state.process_index, state.num_processes, (lambda obj: gather_object([obj])), str(state.device)

