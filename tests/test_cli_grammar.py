"""One CLI grammar (issue 29, item 2): the same flag means the same thing in every command, help
shows each default once under the real program name, and the exit status tells a script what
went wrong (0 ok, 1 a study with failed cells, 2 usage, 3 a lab error).

Mostly parse-only; the commands that run do so on missing inputs and stop before any work.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from core.cli import COMMANDS, EXIT_LAB_ERROR, EXIT_USAGE, build_parser, main, prog_name
from core.commands.config_file import reparse_with_config, reset_warnings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PRINTS_RESULTS = ("dataset", "train-cfg", "sample", "sample-sd", "train-classifier", "experiment", "novelty", "export", "report", "trajectory")


def _parse(argv: list[str]):
    reset_warnings()  # as main() does: each command line warns once
    parser = build_parser("python -m core")
    return reparse_with_config(parser, parser.parse_args(argv), argv)


def _help(capsys, argv: list[str]) -> str:
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


# ------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_clean_and_names_the_program(command, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/imbalance-lab"])  # the console script of pyproject.toml
    text = _help(capsys, [command] if command else [])
    assert text.startswith(f"usage: imbalance-lab {command or ''}".rstrip())
    flat = " ".join(text.split())
    assert "(default: None)" not in flat and "(default: False)" not in flat
    assert not re.search(r"default[^()]*\)\s*\(default:", flat)  # the old doubling: "(default 3000 ...) (default: None)"
    # each option's help states its default at most once
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command] if command else parser
    formatter = sub._get_formatter()
    for action in sub._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            assert formatter._expand_help(action).lower().count("default") <= 1, action.option_strings


def test_the_program_name_follows_how_it_was_run():
    assert prog_name("/usr/local/bin/imbalance-lab") == "imbalance-lab" and prog_name("C:/x/imbalance-lab.exe") == "imbalance-lab"
    assert prog_name("/repo/core/__main__.py") == "python -m core"


# ------------------------------------------------------------------------- one meaning per flag
def test_every_command_takes_a_config_file_layered_under_its_flags(tmp_path):
    parser = build_parser("python -m core")
    subs = parser._subparsers._group_actions[0].choices
    for name, sub in subs.items():
        assert "--config" in sub._option_string_actions, name
    cfg = tmp_path / "data.toml"
    cfg.write_text('profile = "paper"\nratio = 20.0\njson = true\n')
    args = _parse(["dataset", "--config", str(cfg), "--ratio", "5"])
    assert (args.profile, args.ratio, args.json) == ("paper", 5.0, True)  # the file's values, explicit flags over them
    cfg.write_text('host = "127.0.0.1"\nprot = 9000\n')
    with pytest.raises(Exception, match=r"`prot` \(did you mean `port`\?\)"):
        _parse(["app", "--config", str(cfg)])


def test_data_seed_and_train_seed_and_the_old_seed_warns(capsys):
    args = _parse(["train-cfg", "--data-seed", "3", "--train-seed", "4"])
    assert (args.data_seed, args.train_seed) == (3, 4) and "warning" not in capsys.readouterr().err
    for command in ("train-cfg", "train-classifier", "dataset", "novelty"):
        args = _parse([command, "--seed", "5"])
        assert args.data_seed == 5, command
        err = capsys.readouterr().err
        assert "--seed is deprecated" in err and "--data-seed" in err and "--train-seed" in err, command
    assert main(["dataset", "--seed", "1", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["dataset"] == "digits" and out.err.count("--seed is deprecated") == 1


def test_steps_are_optimizer_steps_and_sample_steps_sampler_steps(capsys):
    assert _parse(["train-cfg", "--steps", "7"]).steps == 7 and _parse(["train-classifier", "--steps", "7"]).steps == 7
    assert _parse(["experiment", "--study", "quick", "--out", "x", "--steps", "7"]).steps == 7
    assert capsys.readouterr().err == ""
    for command in (["sample"], ["trajectory"], ["sample-sd"]):
        assert _parse([*command, "--sample-steps", "9"]).sample_steps == 9
        assert "warning" not in capsys.readouterr().err
        assert _parse([*command, "--steps", "9"]).sample_steps == 9
        err = capsys.readouterr().err
        assert "--steps is deprecated for sampler steps" in err and "use --sample-steps" in err


def test_sampler_everywhere_and_the_old_scheduler_warns(capsys):
    for command in ("sample", "trajectory", "sample-sd"):
        assert "--sampler" in build_parser()._subparsers._group_actions[0].choices[command]._option_string_actions
    assert _parse(["sample-sd", "--sampler", "ddim"]).sampler == "ddim" and capsys.readouterr().err == ""
    assert _parse(["sample-sd", "--scheduler", "euler"]).sampler == "euler"
    assert "--scheduler is deprecated" in capsys.readouterr().err


def test_preset_is_a_network_size_and_study_a_built_in_study(capsys):
    assert _parse(["train-cfg", "--preset", "small"]).preset == "small"
    assert _parse(["experiment", "--study", "quick", "--out", "x"]).preset == "quick" and capsys.readouterr().err == ""
    assert _parse(["experiment", "--preset", "quick", "--out", "x"]).preset == "quick"  # the old spelling, for one release
    err = capsys.readouterr().err
    assert "--preset is deprecated in experiment" in err and "--study" in err


def test_json_on_every_command_that_prints_results():
    subs = build_parser()._subparsers._group_actions[0].choices
    for name in PRINTS_RESULTS:
        assert "--json" in subs[name]._option_string_actions, name


# ------------------------------------------------------------------------- existing output folders
def test_sample_and_trajectory_refuse_a_folder_that_holds_files(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.png").write_bytes(b"x")
    # refused before the (missing) run is even opened
    assert main(["sample", "--run", str(tmp_path / "no-run"), "--out", str(taken)]) == EXIT_USAGE
    assert "already exists and is not empty" in capsys.readouterr().err
    assert main(["trajectory", "--run", str(tmp_path / "no-run"), "--out", str(taken)]) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert main(["dataset", "--export", str(taken)]) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["mine.png"]
    # with --overwrite the folder is accepted (and the missing run is the next error: a lab error)
    assert main(["sample", "--run", str(tmp_path / "no-run"), "--out", str(taken), "--overwrite"]) == EXIT_LAB_ERROR


# ------------------------------------------------------------------------- exit codes
def test_exit_codes_from_real_failures(tmp_path, capsys):
    assert main(["dataset", "--bogus-flag"]) == EXIT_USAGE == 2  # argparse
    assert "unrecognized arguments: --bogus-flag" in capsys.readouterr().err
    assert main(["dataset", "--profile", "exponential", "--ratio", "0.5"]) == EXIT_USAGE  # a setting refused
    assert main(["dataset", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "missing")]) == EXIT_LAB_ERROR == 3
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err
    assert main(["export", "--run", str(tmp_path / "no-run"), "--out", str(tmp_path / "x")]) == EXIT_LAB_ERROR  # missing weights
    assert main(["dataset", "--json"]) == 0
    # 1, a study with failed cells: tests/test_experiment.py::test_a_failing_cell_fails_its_row_and_the_exit_status_then_resume_reruns_it


def test_the_readme_documents_the_exit_codes():
    text = README.read_text()
    section = text[text.index("### Exit codes"):]
    for code, words in ((0, "ok"), (1, "failed"), (2, "usage"), (3, "lab error")):
        assert re.search(rf"`{code}`[^\n]*{words}", section, re.I), code


# ------------------------------------------------------------------------- the README keeps working
def _readme_commands() -> list[list[str]]:
    out = []
    for line in README.read_text().splitlines():
        # a line of a code block, or a command quoted in the text (`python -m core ...`)
        for cmd in [line.strip()] + re.findall(r"`(python -m core [^`]+)`", line):
            if cmd.startswith("python -m core ") and "..." not in cmd and "COMMAND" not in cmd and "`" not in cmd:
                out.append(shlex.split(cmd, comments=True)[3:])
    return out


def test_every_readme_command_parses_without_a_deprecation_warning(capsys):
    commands = _readme_commands()
    assert len(commands) >= 15
    parser = build_parser("python -m core")
    for argv in commands:
        if "--help" in argv or "--version" in argv:
            assert main(argv) == 0, argv
            continue
        args = parser.parse_args(argv)
        assert args.command in argv, argv
    assert "warning" not in capsys.readouterr().err


# ------------------------------------------------------------------------- flag ranges (issue 29)
@pytest.mark.parametrize("argv, flag", [
    (["sample", "--n", "0"], "--n 0 is out of range: allowed from 1 to 1,000,000"),
    (["sample", "--n", "2000000"], "--n 2000000 is out of range"),
    (["sample", "--seed", "-1"], "--seed -1 is out of range"),
    (["sample", "--w", "51"], "--w 51.0 is out of range: allowed from 0 to 50"),
    (["sample", "--guidance-scale", "1e9"], "--w 999999999.0 is out of range"),
    (["sample", "--w-per-class", "1,nan"], "--w-per-class nan is out of range"),
    (["sample", "--batch-size", "5000"], "--batch-size 5000 is out of range: allowed from 1 to 1,024"),
    (["sample", "--sample-steps", "0"], "--sample-steps 0 is out of range"),
    (["sample", "--w-gamma", "11"], "--w-gamma 11.0 is out of range"),
    (["trajectory", "--w", "0,99"], "--w 99.0 is out of range: allowed from 0 to 50"),
    (["trajectory", "--seed", "-5"], "--seed -5 is out of range"),
    (["sample-sd", "--n", "0"], "--n 0 is out of range"),
    (["sample-sd", "--resolution", "5000"], "--resolution 5000 is out of range: allowed from 64 to 2,048"),
    (["sample-sd", "--max-attempts", "0.5"], "--max-attempts 0.5 is out of range"),
    (["sample-sd", "--image-size", "5000"], "--image-size 5000 is out of range"),
    (["sample-sd", "--batch-size", "999"], "--batch-size 999 is out of range: allowed from 1 to 256"),
])
def test_sample_trajectory_and_sample_sd_flags_keep_the_config_ranges(tmp_path, capsys, argv, flag):
    """The ranges of core.settings.bounds.CONFIG_BOUNDS (a study's [cfg_sample] and [method_params.sd]), refused before
    any run or model is opened: a usage error naming the flag and the range."""
    out = ["--out", str(tmp_path / "o")] + (["--run", str(tmp_path / "no-run")] if argv[0] != "sample-sd" else ["--class-names", "a,b"])
    assert main(argv + out) == EXIT_USAGE, argv
    err = capsys.readouterr().err
    assert flag in err and "Fix:" in err, err
    assert not (tmp_path / "o").exists()
