import json
import multiprocessing as mp
import os
import signal
import time

import pytest
import torch

from core.store.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from core.errors import ConfigError
from core.store.runs import Run, list_runs, runs_table


def test_run_folder_lifecycle(tmp_path):
    run = Run.create("cfg-train", {"data": {"dataset": "digits", "profile": "paper"}, "steps": 10}, root=tmp_path)
    assert (run.path / "config.json").exists() and run.status["state"] == "queued"
    run.set_status("running", step=3, total=10)
    run.log_metrics({"step": 1, "loss": 0.5})
    run.log_metrics({"step": 2, "loss": 0.4})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a line torn by a kill
    df = run.metrics()
    assert list(df["loss"]) == [0.5, 0.4]
    table = runs_table(tmp_path)
    assert table.loc[0, "state"] == "running" and table.loc[0, "dataset"] == "digits"
    assert [r.id for r in list_runs(tmp_path)] == [run.id]


def test_open_or_create_refuses_other_kind_and_existing(tmp_path):
    Run.open_or_create(tmp_path / "r", "cfg-train", {"a": 1})
    with pytest.raises(ConfigError, match="'cfg-train' run, not 'study'"):
        Run.open_or_create(tmp_path / "r", "study", {})
    with pytest.raises(ConfigError, match="--resume"):
        Run.open_or_create(tmp_path / "r", "cfg-train", {"a": 1})
    assert Run.open_or_create(tmp_path / "r", "cfg-train", {"a": 1}, resume=True).config["a"] == 1


def test_checkpoint_roundtrip(tmp_path):
    w = {"a": torch.randn(3, 4), "ema.a": torch.randn(3, 4)}
    state = {"step": 7, "opt": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]}, "rng": torch.get_rng_state()}
    save_checkpoint(tmp_path, "latest", w, state, {"preset": "tiny"})
    weights, st, cfg = load_checkpoint(checkpoint_path(tmp_path))
    assert torch.equal(weights["a"], w["a"]) and st["step"] == 7 and cfg == {"preset": "tiny"}


def test_corrupt_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path, "latest", {"a": torch.zeros(1)}, {"step": 1}, {})
    (tmp_path / "latest" / "weights.safetensors").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="corrupt"):
        load_checkpoint(tmp_path / "latest")


def _save_forever(root):
    i = 0
    while True:
        i += 1
        save_checkpoint(root, "latest", {"w": torch.full((256, 256), float(i))}, {"step": i}, {"i": i})


def test_killed_mid_save_leaves_a_loadable_checkpoint(tmp_path):
    save_checkpoint(tmp_path, "latest", {"w": torch.zeros(256, 256)}, {"step": 0}, {"i": 0})
    ctx = mp.get_context("spawn")
    for delay in (0.3, 0.55, 0.8):
        p = ctx.Process(target=_save_forever, args=(tmp_path,))
        p.start()
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        path = checkpoint_path(tmp_path)
        assert path is not None
        weights, state, cfg = load_checkpoint(path)
        # weights, state and config all belong to the same save
        assert float(weights["w"][0, 0]) == state["step"] == cfg["i"]
