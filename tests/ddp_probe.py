"""Run under torchrun by a wide fake cell: join the gloo group, all-reduce, record rank and world size."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

if __name__ == "__main__":
    dist.init_process_group("gloo")
    x = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(x)  # 1 + 2 + ... + world
    Path(sys.argv[1], f"rank{dist.get_rank()}.json").write_text(
        json.dumps({"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": float(x)}))
    dist.destroy_process_group()
