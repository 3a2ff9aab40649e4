"""Strict configs (issue 29, item 1): a typo anywhere is refused with the nearest valid name, types and
ranges come from one table (core.settings.bounds.CONFIG_BOUNDS), and config files of earlier versions still load.

Parse-only and dataclass-only: nothing here trains, so the file runs in seconds.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from core.settings.bounds import CONFIG_BOUNDS
from core.cli import main
from core.settings.config_check import CLI_METHOD_PARAMS, KWARGS, SET_BY_CALLER, nearest
from core.errors import ConfigError
from core.study.config import StudyConfig
from core.train.cfg_unet import CFGTrainConfig
from core.train.classifier import ClassifierConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CONFIGS = FIXTURES / "configs"
RECORDED = ("balance_method", "balance_params", "balance_target", "train_set", "schedule")  # what a classifier run adds to config.json

STUDY = """name = "strict"
methods = ["none", "mixup", "cfg"]
cfg_ws = [0.1]
classifiers = ["small"]
seeds = [0]

[data]
dataset = "digits"
profile = "custom"
counts = [2, 3, 4, 6, 8, 10, 14, 20, 30, 40]

[classifier]
steps = 60
batch_size = 32

[classifier_overrides.small]
lr = 0.05

[method_params.mixup]
lam = 0.6

[cfg_train]
steps = 4
batch_size = 8

[cfg_sample]
sampler = "ddim"
steps = 2

[gate]
precision = 0.5

[metrics]
generation = false
"""


def _study(tmp_path, old: str, new: str) -> Path:
    assert old in STUDY, old
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace(old, new, 1))
    return path


def test_the_base_study_loads(tmp_path):
    cfg = StudyConfig.from_toml(_study(tmp_path, "", ""))
    assert cfg.cfg_train == {"steps": 4, "batch_size": 8} and cfg.gate == {"precision": 0.5} and cfg.generation_metrics is False


# ------------------------------------------------------------------------- a typo in every table
@pytest.mark.parametrize("old, new, message", [
    ('seeds = [0]', 'seedz = [0]', "Unknown study option: `seedz` (did you mean `seeds`?)"),
    ('profile = "custom"', 'profil = "custom"\nprofile = "custom"', "Unknown [data] option: `profil` (did you mean `profile`?)"),
    ("[classifier]\nsteps = 60", "[classifier]\nstepz = 60", "Unknown [classifier] option: `stepz` (did you mean `steps`?)"),
    ("lr = 0.05", "lrr = 0.05", "Unknown [classifier_overrides.small] option: `lrr` (did you mean `lr`?)"),
    ("[classifier_overrides.small]", "[classifier_overrides.smal]", "Unknown classifier_overrides option: `smal` (did you mean `small`?)"),
    ("[cfg_train]\nsteps = 4", "[cfg_train]\nstepz = 5000", "Unknown [cfg_train] option: `stepz` (did you mean `steps`?)"),
    ('sampler = "ddim"', 'samplr = "ddim"', "Unknown [cfg_sample] option: `samplr` (did you mean `sampler`?)"),
    ("lam = 0.6", "lamb = 0.6", "Unknown [method_params.mixup] option: `lamb` (did you mean `lam`?)"),
    ("[method_params.mixup]", "[method_params.mixpu]", "Unknown method_params option: `mixpu` (did you mean `mixup`?)"),
    ("precision = 0.5", "precison = 0.5", "Unknown [gate] option: `precison` (did you mean `precision`?)"),
    ("generation = false", "generaton = false", "Unknown [metrics] option: `generaton` (did you mean `generation`?)"),
])
def test_a_typo_in_each_study_table_is_refused_with_the_nearest_name(tmp_path, old, new, message):
    with pytest.raises(ConfigError) as e:
        StudyConfig.from_toml(_study(tmp_path, old, new))
    assert message in str(e.value) and "Fix:" in str(e.value)


# ------------------------------------------------------------------------- issue 28's two study files, and types
@pytest.mark.parametrize("old, new, message", [
    # a per-classifier override is checked as applied over [classifier]: 10^9 optimizer steps
    ("lr = 0.05", "lr = 0.05\nsteps = 1000000000", "[classifier_overrides.small] steps = 1,000,000,000 is out of range: allowed from 1 to 1,000,000"),
    ("[cfg_train]\nsteps = 4\nbatch_size = 8", "[cfg_train]\nsteps = 4\nbatch_size = 100000",
     "[cfg_train] batch_size = 100,000 is out of range: allowed from 1 to 1,024 images per step"),
    ('sampler = "ddim"\nsteps = 2', 'sampler = "ddim"\nsteps = 5000', "[cfg_sample] steps = 5,000 is out of range: allowed from 1 to 1,000"),
    ("lam = 0.6", "lam = 1.5", "[method_params.mixup] lam = 1.5 is out of range: allowed from 0 to 1"),
    ("precision = 0.5", "tail_classes = 5000", "[gate] tail_classes = 5,000 is out of range: allowed from 1 to 1,000"),
    ('counts = [2, 3', 'counts = [0, 3', "[data] counts = 0 is out of range: allowed from 1 to 1,000,000"),
    ("seeds = [0]", "seeds = [-1]", "study seeds = -1 is out of range"),
    ("[classifier]\nsteps = 60", '[classifier]\nsteps = "60"', "[classifier] steps = '60' has the wrong type: it must be a whole number"),
    ("[cfg_train]\nsteps = 4", "[cfg_train]\nsteps = 4.5", "[cfg_train] steps = 4.5 has the wrong type: it must be a whole number"),
    ('cfg_ws = [0.1]', 'cfg_ws = 0.1', "study cfg_ws = 0.1 has the wrong type: it must be a list"),
    # each entry of a list has its type (issue 28's input sweep: counts = ["12"] and [true] started a study)
    ('counts = [2, 3', 'counts = ["2", 3', "[data] counts = '2' has the wrong type: it must be a whole number"),
    ('counts = [2, 3', 'counts = [true, 3', "[data] counts = True has the wrong type: it must be a whole number"),
    ("seeds = [0]", "seeds = [true]", "study seeds = True has the wrong type: it must be a whole number"),
    ('cfg_ws = [0.1]', 'cfg_ws = ["0.1"]', "study cfg_ws = '0.1' has the wrong type: it must be a number"),
    ('methods = [', 'methods = [1, ', "study methods = 1 has the wrong type: it must be text"),
])
def test_every_nested_value_is_checked_against_the_one_table(tmp_path, old, new, message):
    with pytest.raises(ConfigError) as e:
        StudyConfig.from_toml(_study(tmp_path, old, new))
    assert message in str(e.value)


def test_the_apps_upload_path_refuses_the_same_files(tmp_path):
    from core.study.start import from_upload

    big = STUDY.replace("lr = 0.05", "lr = 0.05\nsteps = 1000000000")
    with pytest.raises(ConfigError, match=r"steps = 1,000,000,000 is out of range"):
        from_upload("big.toml", big.encode())
    with pytest.raises(ConfigError, match=r"batch_size = 100,000 is out of range"):
        from_upload("batch.toml", STUDY.replace("batch_size = 8", "batch_size = 100000").encode())


def test_the_cli_refuses_the_study_before_any_work(tmp_path, capsys):
    path = _study(tmp_path, "[cfg_train]\nsteps = 4", "[cfg_train]\nstepz = 5000")
    assert main(["experiment", "--config", str(path), "--out", str(tmp_path / "s")]) == 2
    assert "did you mean `steps`?" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_a_whole_float_for_a_whole_number_is_taken_as_one():
    cfg = CFGTrainConfig.from_dict({"steps": 40.0, "data": {"image_size": 16.0}})
    assert cfg.steps == 40 and isinstance(cfg.steps, int) and cfg.data.image_size == 16


# ------------------------------------------------------------------------- run configs
def test_a_typo_in_a_run_config_is_refused_with_the_nearest_name():
    with pytest.raises(ConfigError, match=r"Unknown cfg_train config option: `stpes` \(did you mean `steps`\?\)"):
        CFGTrainConfig.from_dict({"stpes": 10})
    with pytest.raises(ConfigError, match=r"Unknown classifier config option: `epoch` \(did you mean `epochs`\?\)"):
        ClassifierConfig.from_dict({"epoch": 10})
    with pytest.raises(ConfigError, match=r"Unknown \[data\] option: `ratoi` \(did you mean `ratio`\?\)"):
        ClassifierConfig.from_dict({"data": {"ratoi": 10}})
    with pytest.raises(ConfigError, match=r"batch_size = 0 is out of range: allowed from 1 to 1,024"):
        ClassifierConfig.from_dict({"batch_size": 0})


def test_a_typo_in_a_cli_config_file_and_in_method_params_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stpes": 10, "batch_size": 4}))
    assert main(["train-cfg", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert f"Unknown --config {bad} option: `stpes` (did you mean `steps`?)" in capsys.readouterr().err
    toml = tmp_path / "bad.toml"
    toml.write_text('batch-sise = 4\n')
    assert main(["train-classifier", "--config", str(toml), "--out", str(tmp_path / "c")]) == 2
    assert "`batch-sise` (did you mean `batch-size`?)" in capsys.readouterr().err
    assert main(["train-classifier", "--method", "mixup", "--method-params", '{"lamda": 0.6}', "--out", str(tmp_path / "c")]) == 2
    assert "Unknown --method-params (mixup) option: `lamda` (did you mean `lam`?)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


# ------------------------------------------------------------------------- saved configs of earlier versions
def test_saved_run_configs_of_earlier_versions_still_load():
    cfg = CFGTrainConfig.from_dict(json.loads((CONFIGS / "cfg_run.config.json").read_text()))
    assert (cfg.steps, cfg.batch_size, cfg.preview_steps, cfg.data.dataset) == (2, 8, 2, "digits")
    early = CFGTrainConfig.from_dict(json.loads((CONFIGS / "cfg_run_early.config.json").read_text()))
    assert early.cbdm_tau == 0.0 and early.log_with is None and early.data.judge_per_class == 0  # later fields: their defaults
    saved = json.loads((CONFIGS / "classifier_run.config.json").read_text())
    clf = ClassifierConfig.from_dict({k: v for k, v in saved.items() if k not in RECORDED})
    assert (clf.steps, clf.batch_size, clf.arch) == (2, 16, "small")
    for name in ("study_quick", "study_tiny"):
        study = StudyConfig.from_dict(json.loads((CONFIGS / f"{name}.config.json").read_text()))
        assert study.name == name.split("_")[1]


def _parsed(argv: list[str]):
    from core.cli import build_parser
    from core.commands.config_file import reparse_with_config

    parser = build_parser("python -m core")
    return reparse_with_config(parser, parser.parse_args(argv), argv)


def test_saved_files_replay_through_the_cli_config_flag(tmp_path):
    args = _parsed(["train-cfg", "--config", str(CONFIGS / "cfg_run.config.json"), "--steps", "5"])
    assert (args.steps, args.batch_size, args.preview_steps, args.train_seed, args.data_seed) == (5, 8, 2, 0, 0)
    args = _parsed(["train-cfg", "--config", str(CONFIGS / "cfg_run_early.config.json")])
    assert args.steps == 2 and args.config_dict["log_every"] == 25
    args = _parsed(["train-classifier", "--config", str(CONFIGS / "classifier_run.config.json")])
    assert (args.steps, args.method, json.loads(args.method_params)) == (2, "mixup", {"lam": 0.6})
    args = _parsed(["sample", "--config", str(CONFIGS / "sample.params.json"), "--out", str(tmp_path / "o")])
    assert (args.sample_steps, args.classes, args.n, args.run) == (2, "0,1", 1, "/tmp/lab/cfg")
    args = _parsed(["trajectory", "--config", str(CONFIGS / "trajectory.params.json"), "--out", str(tmp_path / "t")])
    assert (args.sample_steps, args.w, args.class_) == (2, "0.0", "0")


def test_a_config_of_another_kind_fails_clearly(tmp_path, capsys):
    assert main(["train-cfg", "--config", str(CONFIGS / "classifier_run.config.json"), "--out", str(tmp_path / "r")]) == 2
    assert "is the config of a 'classifier' run, not a 'cfg' one" in capsys.readouterr().err


# ------------------------------------------------------------------------- the tables agree with the code
def test_the_generator_tables_match_the_generators_signatures():
    from core.generators.baselines import BASELINES
    from core.generators.cfg import CFGGenerator
    from core.generators.sd import SDGenerator

    def params(fn, skip=()):
        return {n for n in inspect.signature(fn).parameters if n not in ("self", "train", *skip)}

    for m in ("oversample", "mixup", "cutmix"):
        assert set(KWARGS[f"method_params.{m}"]) == params(BASELINES[m].__init__)
    assert set(KWARGS["cfg_sample"]) == params(CFGGenerator.__init__, SET_BY_CALLER)
    assert set(CLI_METHOD_PARAMS["method_params.cfg"]) == params(CFGGenerator.__init__, ("classes", "channels", "image_size"))
    assert set(KWARGS["method_params.sd"]) == params(SDGenerator.__init__, [k for k in SET_BY_CALLER if k != "w"])
    # every ranged key is a key of its table
    for table, keys in CONFIG_BOUNDS.items():
        known = {"cfg_train": CFGTrainConfig.__dataclass_fields__, "classifier": ClassifierConfig.__dataclass_fields__,
                 "study": StudyConfig.__dataclass_fields__, "cfg_sample": {**KWARGS["cfg_sample"], "w": 0}}.get(table)
        if known is None and table.startswith("method_params."):
            known = CLI_METHOD_PARAMS[table]
        if known is not None:
            assert set(keys) <= set(known), table


def test_meta_keys_agree_with_the_runs_module():
    from core.commands.config_file import META as CLI_META
    from core.settings.jobconfig import META
    from core.store.runs import META_KEYS

    assert set(META) == set(META_KEYS) == set(CLI_META)


def test_nearest_needs_a_close_name():
    assert nearest("stepz", ["steps", "batch_size"]) == "steps" and nearest("zzz", ["steps"]) is None


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe\x00name = 1\n", "is not UTF-8 text (invalid start byte at byte 0)"),
    (b"x = " + b"[" * 1000 + b"]" * 1000 + b"\n", "nests arrays or tables too deeply to read"),
    (b"x = " + b"{a = " * 1000 + b"1" + b"}" * 1000 + b"\n", "nests arrays or tables too deeply to read"),
    (STUDY.replace("seeds = [0]", "seeds = [0]\nfixed_subset = 1979-05-27").encode(), "fixed_subset = datetime.date(1979, 5, 27) has the wrong type"),
    (STUDY.replace('profile = "custom"', 'profile = "xxxx"').encode(), "Unknown profile 'xxxx'"),  # started, then every cell failed
])
def test_files_that_are_not_study_tables_are_config_errors(data, message):
    """Issue 28's upload sweep: these raised UnicodeDecodeError and RecursionError through the Study page (an
    exception box), and a TOML date passed every type check."""
    from core.study.start import from_upload

    with pytest.raises(ConfigError) as e:
        from_upload("s.toml", data)
    assert message in str(e.value)
