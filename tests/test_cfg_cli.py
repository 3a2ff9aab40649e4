"""`python -m core train-cfg` and `python -m core sample` end to end on digits."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.cli import main
from core.store.runs import Run

ROOT = Path(__file__).resolve().parent.parent


def test_train_resume_and_sample_end_to_end(tmp_path, capsys):
    run_dir, out = tmp_path / "run", tmp_path / "samples"
    train = ["train-cfg", "--dataset", "digits", "--profile", "paper", "--preset", "tiny", "--steps", "6", "--batch-size", "8",
             "--preview-every", "0", "--preview-steps", "2", "--out", str(run_dir)]
    # a real process for the first call: the installed entry point, not just main()
    proc = subprocess.run([sys.executable, "-m", "core", *train], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: trained 6 steps" in proc.stdout
    assert Run(run_dir).status["step"] == 6 and Run(run_dir).config["data"]["profile"] == "paper"

    assert main(train) == 2  # the folder holds a run: refused without --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["train-cfg", "--out", str(run_dir), "--resume", "--steps", "8", "--quiet"]) == 0
    assert Run(run_dir).status["step"] == 8 and list(Run(run_dir).metrics()["step"])[-1] == 8

    rc = main(["sample", "--run", str(run_dir), "--classes", "0,1", "--n", "3", "--w", "7.5", "--sampler", "ddim",
               "--sample-steps", "3", "--seed", "1", "--out", str(out)])
    assert rc == 0
    assert len(list(out.rglob("*.png"))) == 6
    with np.load(out / "samples.npz") as z:
        assert z["images"].shape == (6, 1, 16, 16) and z["labels"].tolist() == [0, 0, 0, 1, 1, 1]
        assert set(z["provenance"].tolist()) == {"cfg@w=7.5"}
    params = json.loads((out / "params.json").read_text())
    assert params["w"] == 7.5 and params["guidance_scale"] == 8.5 and params["sampler"] == "ddim" and params["trained_steps"] == 8

    # --guidance-scale is 1 + w: the same images as --w 7.5
    assert main(["sample", "--run", str(run_dir), "--classes", "0,1", "--n", "3", "--guidance-scale", "8.5", "--sampler", "ddim",
                 "--sample-steps", "3", "--seed", "1", "--out", str(tmp_path / "gs")]) == 0
    with np.load(out / "samples.npz") as a, np.load(tmp_path / "gs" / "samples.npz") as b:
        assert np.abs(a["images"].astype(int) - b["images"].astype(int)).max() <= 1


def test_sample_bad_input_gets_a_clear_error(tmp_path, capsys):
    for argv, msg, code in [
        (["sample", "--run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "does not exist", 3),  # missing weights: a lab error
        (["sample", "--run", str(tmp_path), "--out", str(tmp_path / "o")], "no 'latest' checkpoint", 3),
        (["sample", "--run", str(tmp_path), "--guidance-scale", "0.5", "--out", str(tmp_path / "o")], "below 1", 2),  # a usage error
        (["train-cfg", "--steps", "0", "--out", str(tmp_path / "r")], "steps = 0 is out of range", 2),
    ]:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert msg in err and "Fix:" in err, err


def test_help_documents_every_option():
    proc = subprocess.run([sys.executable, "-m", "core", "sample", "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0
    for opt in ("--run", "--classes", "--n", "--w", "--guidance-scale", "--sampler", "--sample-steps", "--seed", "--out", "1 + w"):
        assert opt in proc.stdout
