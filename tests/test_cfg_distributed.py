"""The CFG training loop as 2 CPU processes on gloo (torchrun), as under `accelerate launch`."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from safetensors.torch import load_file

from core.store.checkpoint import checkpoint_path, load_checkpoint
from core.store.runs import Run

ROOT = Path(__file__).resolve().parent.parent

RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    sys.path.insert(0, {root!r})
    from core.data.loading import DataConfig
    from core.train.cfg_unet import CFGTrainConfig, fit

    out = sys.argv[1]
    cfg = CFGTrainConfig(data=DataConfig(dataset="digits", profile="paper"), preset="tiny", steps=6, batch_size=8,
                         log_every=2, checkpoint_every=0, preview_every=0, preview_per_class=1, preview_steps=2, device="cpu")
    path, model = fit(cfg, out + "/run")
    rank = dist.get_rank()
    save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, f"{{out}}/rank{{rank}}.safetensors")
    with open(f"{{out}}/rank{{rank}}.json", "w") as f:
        json.dump({{"rank": rank, "world_size": dist.get_world_size(), "backend": dist.get_backend()}}, f)
    """
)


def _torchrun(tmp_path, timeout=300):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )


def test_refused_run_folder_stops_every_rank(tmp_path):
    # The folder already holds a run and --resume is not given: rank 0 refuses it, and
    # rank 1 must stop with the same message rather than wait at the barrier forever.
    Run.open_or_create(tmp_path / "run", "cfg", {"existing": True})
    before = (tmp_path / "run" / "config.json").read_bytes()
    proc = _torchrun(tmp_path, timeout=180)
    assert proc.returncode != 0
    assert "already holds a run" in proc.stderr and "main process refused the run folder" in proc.stderr
    assert (tmp_path / "run" / "config.json").read_bytes() == before  # nothing overwritten


def test_two_process_gloo_run_keeps_ranks_in_sync(tmp_path):
    proc = _torchrun(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["world_size"] for i in infos] == [2, 2] and infos[0]["backend"] == "gloo"
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert w0.keys() == w1.keys()
    assert all(w0[k].equal(w1[k]) for k in w0)  # DDP kept both ranks' weights identical
    run = Run(tmp_path / "run")
    assert run.status["state"] == "done" and run.status["world_size"] == 2 and run.status["step"] == 6
    # only the main process wrote the run: one metrics row per logged step, its weights in the checkpoint
    assert list(run.metrics()["step"]) == [2, 4, 6]
    weights, state, _ = load_checkpoint(checkpoint_path(run.checkpoints))
    assert state["step"] == 6 and all(weights[f"model.{k}"].equal(w0[k]) for k in w0)
    # and it trained: the weights moved away from the seeded initialisation
    import torch

    from core.nets.unet import build_unet

    torch.manual_seed(0)
    init = build_unet("tiny", 10, 1, 16).state_dict()
    assert any(not init[k].equal(w0[k]) for k in w0)
