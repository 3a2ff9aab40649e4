"""``python -m core sample-sd`` on the miniature pipeline, and sharding under accelerate."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.cli import main
from core.generators import sd
from core.paths import models_dir

ROOT = Path(__file__).resolve().parent.parent


from tests.sd_fixtures import one_thread, tiny_sd  # noqa: E402,F401  (pytest fixtures)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float rounding (batched kernels may move a pixel by a level or two of 255)."""
    d = np.abs(a.astype(int) - b.astype(int))
    return a.shape == b.shape and d.max() <= 3 and d.mean() < 0.1


def read_folder(out: Path, classes: list[str]) -> dict[str, np.ndarray]:
    return {c: np.stack([np.asarray(Image.open(p)) for p in sorted((out / c).glob("*.png"))]) for c in classes}


def test_cli_writes_class_folders_grid_and_params(tiny_sd, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["sample-sd", "--model", "someone/tiny-sd", "--class-names", "cat,dog,emu", "--classes", "0,emu", "--n", "3",
               "--prompt", "a photo of a {class}", "--sample-steps", "2", "--w", "6.5", "--seed", "1", "--image-size", "16", "--out", str(out)])
    assert rc == 0
    imgs = read_folder(out, ["cat", "emu"])
    assert imgs["cat"].shape == (3, 16, 16, 3) and imgs["cat"].dtype == np.uint8
    assert not (out / "dog").exists()
    params = json.loads((out / "params.json").read_text())
    assert (params["w"], params["guidance_scale"], params["steps"], params["seed"]) == (6.5, 7.5, 2, 1)
    assert params["generated_classes"] == ["cat", "emu"] and params["prompts"]["emu"] == "a photo of a emu"
    assert Image.open(out / "grid.png").size[0] > 3 * 16
    err = capsys.readouterr().err
    assert "w=6.5 (guidance_scale=7.5)" in err and "ETA" in err
    # the files hold exactly what the generator makes for those seeds
    g = sd.SDGenerator(["cat", "dog", "emu"], 3, 16, model="someone/tiny-sd", steps=2)
    assert same(imgs["emu"], g.generate(2, 3, seed=1).images.permute(0, 2, 3, 1).numpy())
    # nothing already saved is overwritten by accident
    rc = main(["sample-sd", "--model", "someone/tiny-sd", "--class-names", "cat,dog,emu", "--n", "1", "--sample-steps", "1", "--out", str(out)])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err


def test_cli_dataset_supplies_class_names_size_and_channels(tiny_sd, tmp_path):
    out = tmp_path / "digits"
    rc = main(["sample-sd", "--model", str(tiny_sd), "--dataset", "digits", "--classes", "3", "--n", "2", "--sample-steps", "1",
               "--w", "0", "--sampler", "model", "--out", str(out)])
    assert rc == 0
    img = Image.open(next((out / "3").glob("*.png")))
    assert img.mode == "L" and img.size == (16, 16)  # digits: 16x16 grayscale
    params = json.loads((out / "params.json").read_text())
    assert params["cfg_active"] is False and params["guidance_scale"] == 1.0 and params["channels"] == 1


def test_cli_offline_without_weights_exits_nonzero_with_the_fix(tiny_sd, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMBALANCE_LAB_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(sd.weights, "_in_hf_cache", lambda model: False)
    rc = main(["sample-sd", "--class-names", "cat,dog", "--n", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 3  # missing weights: a lab error
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in err and str(tmp_path / "models" / "stable-diffusion-v1-5") in err
    assert "hf download" in err and not (tmp_path / "o").exists()
    assert main(["sample-sd", "--model", str(tiny_sd), "--n", "1"]) == 2 and "--dataset" in capsys.readouterr().err


def test_cli_help_lists_both_guidance_conventions(capsys):
    assert main(["sample-sd", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--model", "--classes", "--n", "--prompt", "--sample-steps", "--w", "--seed", "--out", "--dataset", "--data-dir", "--filter"):
        assert flag in text
    assert "guidance_scale = 1 + w" in text


def test_two_processes_shard_the_seeds_and_give_the_same_images(tiny_sd, tmp_path):
    """Two ranks (as `accelerate launch --multi_gpu --num_processes 2` starts them, here on CPUs with
    gloo) render alternate seeds; the gathered result equals one process's output."""
    common = ["--model", "someone/tiny-sd", "--class-names", "cat,dog", "--n", "5", "--sample-steps", "2", "--batch-size", "2",
              "--image-size", "16", "--seed", "3"]
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    procs = []
    for rank in range(2):  # the variables torchrun/accelerate set for each process
        env = {**os.environ, "OMP_NUM_THREADS": "1", "IMBALANCE_LAB_MODELS": str(models_dir()), "WORLD_SIZE": "2",
               "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, "-m", "core", "sample-sd", *common, "--out", str(tmp_path / "two")],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    params = json.loads((tmp_path / "two" / "params.json").read_text())
    assert params["processes"] == 2
    assert params["rendered_by_main_process"] == 6  # seeds 0, 2, 4 of each class; rank 1 made 1, 3
    assert main(["sample-sd", *common, "--out", str(tmp_path / "one")]) == 0
    two, one = read_folder(tmp_path / "two", ["cat", "dog"]), read_folder(tmp_path / "one", ["cat", "dog"])
    for c in ("cat", "dog"):
        assert one[c].shape == (5, 16, 16, 3)
        assert same(one[c], two[c])
    assert not same(one["cat"], one["dog"])


def test_cli_filter_with_the_real_judge_keeps_only_images_it_assigns_to_the_class(tiny_sd, tmp_path, capsys):
    from core.data.loading import DataConfig
    from core.metrics.judge import get_judge

    judge = get_judge(DataConfig(dataset="digits"))  # cached in models/judges after the first test that needs it
    g = sd.SDGenerator([str(i) for i in range(10)], 1, 16, model="someone/tiny-sd", steps=1, w=0.0)
    votes = torch.bincount(judge.predict(g.generate(0, 24, seed=0).images), minlength=10)
    favourite = int(votes.argmax())
    assert votes[favourite] >= 3  # noise looks like some digit to the judge
    out = tmp_path / "filtered"
    args = ["sample-sd", "--model", "someone/tiny-sd", "--dataset", "digits", "--sample-steps", "1", "--w", "0", "--filter", "--n", "2"]
    assert main([*args, "--classes", str(favourite), "--max-attempts", "20", "--out", str(out)]) == 0
    kept = torch.from_numpy(read_folder(out, [str(favourite)])[str(favourite)]).unsqueeze(1)
    assert kept.shape == (2, 1, 16, 16)
    assert (judge.predict(kept) == favourite).all()
    stats = json.loads((out / "params.json").read_text())["filter_stats"][str(favourite)]
    assert stats["accepted"] >= 2 and stats["candidates"] == stats["accepted"] + stats["rejected"]
    assert f"{favourite}: rejected {stats['rejected']} of {stats['candidates']}" in capsys.readouterr().err


class _NeverThisClass:
    """A judge that assigns every image of class c to class c + 1: the filter rejects them all."""

    def __init__(self, c: int):
        self.c = c

    def predict(self, images):
        return torch.full((len(images),), self.c + 1)


def test_cli_filter_shortfall_exits_2_naming_the_rate_and_the_fix(tiny_sd, tmp_path, monkeypatch, capsys):
    import core.metrics.judge

    monkeypatch.setattr(core.metrics.judge, "get_judge", lambda *a, **k: _NeverThisClass(3))
    rc = main(["sample-sd", "--model", "someone/tiny-sd", "--dataset", "digits", "--sample-steps", "1", "--w", "0", "--filter", "--n", "2",
               "--classes", "3", "--max-attempts", "2", "--out", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Only 0 of 2 images of class '3' were accepted after 4 candidates (rejection rate 100%" in err
    assert "--class-prompt '3=...'" in err and "raise max_attempts" in err
