"""Re-run and script: --config FILE on train-cfg/train-classifier/sample, `import core`, -q/-v and progress bars."""

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY_CFG = ["--profile", "paper", "--preset", "tiny", "--steps", "2", "--batch-size", "4", "--lr", "0.002", "--p-uncond", "0.2",
            "--preview-every", "0", "--preview-steps", "1", "--checkpoint-every", "0", "--train-seed", "3"]


def _config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


@pytest.fixture(scope="module")
def cfg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cfg") / "run1"
    assert main(["-q", "train-cfg", *TINY_CFG, "--out", str(out)]) == 0
    return out


def test_train_cfg_rerun_from_its_config_json_has_the_same_config(cfg_run, tmp_path):
    from core.train.cfg_unet import CFGTrainConfig

    run2 = tmp_path / "run2"
    assert main(["-q", "train-cfg", "--config", str(cfg_run / "config.json"), "--out", str(run2)]) == 0
    c1, c2 = _config(cfg_run), _config(run2)
    fields = set(CFGTrainConfig.__dataclass_fields__) | {"kind"}
    assert {k: c1[k] for k in fields} == {k: c2[k] for k in fields}
    assert c2["steps"] == 2 and c2["lr"] == 0.002 and c2["p_uncond"] == 0.2 and c2["seed"] == 3 and c2["data"]["profile"] == "paper"


def test_explicit_flags_override_the_file_and_settings_without_a_flag_come_from_it(cfg_run, tmp_path):
    edited = {**_config(cfg_run), "log_every": 1, "preview_per_class": 2}
    edited["data"] = {**edited["data"], "test_per_class": 5}
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    run3 = tmp_path / "run3"
    assert main(["-q", "train-cfg", "--config", str(tmp_path / "edited.json"), "--steps", "3", "--out", str(run3)]) == 0
    c1, c3 = _config(cfg_run), _config(run3)
    assert c3["steps"] == 3 and c3["log_every"] == 1 and c3["preview_per_class"] == 2 and c3["data"]["test_per_class"] == 5
    same = {k for k in c1 if k not in ("created", "steps", "log_every", "preview_per_class", "data")}
    assert {k: c1[k] for k in same} == {k: c3[k] for k in same}
    from core.store.runs import Run

    assert list(Run(run3).metrics()["step"]) == [1, 2, 3]  # log_every 1, from the file


def test_train_classifier_rerun_from_its_config_json(tmp_path, capsys):
    from core.train.classifier import ClassifierConfig

    c1_dir, c2_dir = tmp_path / "c1", tmp_path / "c2"
    assert main(["train-classifier", "--profile", "paper", "--steps", "2", "--batch-size", "16", "--lr", "0.05", "--method", "mixup",
                 "--method-params", '{"lam": 0.6}', "--train-seed", "2", "--no-cifar-stem", "--json", "--out", str(c1_dir)]) == 0
    assert main(["train-classifier", "--config", str(c1_dir / "config.json"), "--json", "--out", str(c2_dir)]) == 0
    r1, r2 = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    c1, c2 = _config(c1_dir), _config(c2_dir)
    keys = set(ClassifierConfig.__dataclass_fields__) | {"kind", "balance_method", "balance_params", "balance_target", "train_set", "schedule"}
    assert keys <= set(c1) and set(c1) == set(c2)
    assert {k: c1[k] for k in keys} == {k: c2[k] for k in keys}
    assert c2["balance_method"] == "mixup" and c2["balance_params"] == {"lam": 0.6} and c2["cifar_stem"] is False and c2["seed"] == 2
    assert r1["accuracy"] == r2["accuracy"]  # the same run again, to the last digit


def test_sample_rerun_from_params_json(cfg_run, tmp_path, capsys):
    s1, s2, s3 = tmp_path / "s1", tmp_path / "s2", tmp_path / "s3"
    assert main(["sample", "--run", str(cfg_run), "--classes", "0,1", "--n", "2", "--w", "2", "--sampler", "ddim", "--sample-steps", "2",
                 "--seed", "4", "--out", str(s1)]) == 0
    assert re.search(r"sample: .*img", capsys.readouterr().err)  # a progress bar by default
    assert main(["-q", "sample", "--config", str(s1 / "params.json"), "--out", str(s2)]) == 0
    assert capsys.readouterr().err == ""  # -q: no bar
    p1, p2 = (json.loads((s / "params.json").read_text()) for s in (s1, s2))
    assert {k: v for k, v in p1.items() if k != "seconds"} == {k: v for k, v in p2.items() if k != "seconds"}
    with np.load(s1 / "samples.npz") as a, np.load(s2 / "samples.npz") as b:
        assert np.array_equal(a["images"], b["images"]) and a["labels"].tolist() == [0, 0, 1, 1]
    assert main(["sample", "--config", str(s1 / "params.json"), "--w", "0", "--out", str(s3), "-q"]) == 0  # the flag wins
    assert json.loads((s3 / "params.json").read_text())["w"] == 0.0


def test_config_of_another_kind_or_missing_is_a_clear_error(cfg_run, tmp_path, capsys):
    assert main(["train-classifier", "--config", str(cfg_run / "config.json"), "--out", str(tmp_path / "x")]) == 2
    assert "'cfg' run, not a 'classifier'" in capsys.readouterr().err
    assert main(["train-cfg", "--config", str(tmp_path / "missing.json")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["sample", "--out", str(tmp_path / "y")]) == 2
    assert "--run is missing" in capsys.readouterr().err


def test_verbosity_flags_set_the_log_level():
    root = logging.getLogger()
    old = root.level
    try:
        assert main(["-v", "export", "--run", "/nonexistent", "--out", "/nonexistent-out"]) == 3  # no weights: a lab error
        assert root.level == logging.INFO
        assert main(["export", "--run", "/nonexistent", "--out", "/nonexistent-out", "-q"]) == 3
        assert root.level == logging.ERROR
    finally:
        root.setLevel(old)


def test_import_core_is_cheap_and_offers_the_entry_points():
    code = ("import sys, core; heavy = [m for m in ('torch', 'diffusers', 'pandas') if m in sys.modules]; "
            "import core.train.cfg_unet as t, core.study.presets as e; "
            "print(heavy, core.train_cfg is t.train_cfg, core.study_preset is e.preset, 'train_classifier' in dir(core))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "[] True True True", out.stderr[-2000:]
    import core

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        core.nope  # noqa: B018


TINY_STUDY = {"name": "nb", "methods": ["none", "oversample"], "classifiers": ["small"], "seeds": [0], "compare_to": ["none"],
              "generation_metrics": False, "data": {"dataset": "digits", "profile": "custom", "counts": [2, 3, 4, 6, 8, 10, 14, 20, 30, 40]},
              "classifier": {"epochs": 1, "batch_size": 64, "eval_every": 0}}


def test_readme_notebook_example_runs_with_tiny_settings(tmp_path, monkeypatch, capsys):
    import core

    text = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- notebook-example -->\s*```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    tiny = (code.replace("steps=1000)", "steps=2, batch_size=8, preview_steps=1)").replace('"steps": 25', '"steps": 1')
            .replace("steps=25", "steps=1").replace("epochs=30", "epochs=1, batch_size=64")
            .replace('core.study_preset("quick")', "core.StudyConfig.from_dict(TINY_STUDY)"))
    for part in ("steps=2, batch_size=8", '"steps": 1', "w=7.5, steps=1)", "epochs=1,", "TINY_STUDY"):
        assert part in tiny, part  # every substitution found its place
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    ns = {"TINY_STUDY": TINY_STUDY}
    exec(tiny, ns)
    assert ns["samples"].images.shape == (16, 1, 16, 16) and ns["samples"].labels.tolist() == [0] * 16
    assert (tmp_path / "runs" / "nb-clf" / "results.json").exists() and (tmp_path / "runs" / "nb-study" / "results.csv").exists()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("accuracy ") and "'method': 'none'" in lines[-1]
    assert core.CFGTrainConfig is ns["core"].CFGTrainConfig
