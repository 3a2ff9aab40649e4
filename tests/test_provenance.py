"""Provenance (issue 18 item 3): every run folder and study says which code, which packages, which
device and which command or app page made it; the Results page shows it."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from core.store import provenance
from core.store.atomic import read_json
from core.jobs import JobManager
from core.paths import PROJECT_ROOT
from core.study.tables import compare_configs, settings_of
from core.store.runs import Run
from tests.test_app_pages import _button, _frame, _page, _wait_all, app, fake_cfg_runner  # noqa: F401  (app: a fixture)

VERSION_KEYS = ["torch", "torchvision", "diffusers", "accelerate", "streamlit", "torch-fidelity", "python"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_git_state_commit_and_dirty_flag(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    assert len(head) == 40
    assert provenance.git_state(repo) == {"commit": head, "dirty": False, "git_error": None}
    (repo / "untracked.txt").write_text("runs and caches are untracked\n")
    assert provenance.git_state(repo)["dirty"] is False
    (repo / "a.txt").write_text("two\n")
    assert provenance.git_state(repo) == {"commit": head, "dirty": True, "git_error": None}


def test_git_state_without_a_repository_or_without_git(tmp_path, monkeypatch):
    plain = tmp_path / "installed"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # do not find a repository above tmp
    state = provenance.git_state(plain)
    assert state["commit"] is None and state["dirty"] is None
    assert state["git_error"].startswith(f"{plain} is not a git checkout with a commit")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert provenance.git_state(plain) == {"commit": None, "dirty": None, "git_error": "git is not installed"}


def test_command_line_reads_back_as_python_m_core():
    argv = [str(PROJECT_ROOT / "core" / "__main__.py"), "train-cfg", "--out", "runs/my run"]
    assert provenance.command_line(argv) == "python -m core train-cfg --out 'runs/my run'"
    assert provenance.command_line(["/venv/bin/imbalance-lab", "sample", "--n", "4"]) == "/venv/bin/imbalance-lab sample --n 4"


def _expected_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _check_block(prov: dict, device: str, page: str | None) -> None:
    assert list(prov["versions"]) == VERSION_KEYS
    assert prov["versions"]["torch"] == metadata.version("torch")
    assert prov["versions"]["torch-fidelity"] == metadata.version("torch-fidelity")
    assert prov["versions"]["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert prov["commit"] == _expected_commit()
    if prov["commit"] is not None:
        assert len(prov["commit"]) == 40 and isinstance(prov["dirty"], bool)
    assert prov["device"] == device
    assert prov["page"] == page
    assert prov["command"] == provenance.command_line()


def test_every_run_folder_records_its_provenance(tmp_path):
    run = Run.create("classifier", {"arch": "small", "device": "cpu", "seed": 3}, root=tmp_path)
    saved = read_json(run.path / "config.json")
    assert saved["arch"] == "small" and saved["seed"] == 3  # the settings are untouched beside it
    _check_block(saved["provenance"], device="cpu", page=None)
    assert run.provenance == saved["provenance"]
    # a CLI training creates its folder through open_or_create: the same record
    cli = Run.open_or_create(tmp_path / "cli-run", "cfg", {"steps": 5, "device": "cpu"})
    _check_block(cli.provenance, device="cpu", page=None)


def test_a_job_records_the_page_that_started_it(tmp_path):
    m = JobManager(root=tmp_path / "runs", devices=["cpu"], runners={"noop": lambda ctx: None})
    try:
        job = m.submit("noop", {"x": 1}, page="Train")
        m.wait(job.id, 30)
        assert m.get(job.id).state == "done"
    finally:
        m.shutdown()
    _check_block(job.run.provenance, device="cpu", page="Train")


def test_a_study_records_its_provenance_and_still_resumes(tmp_path):
    from core.study.config import StudyConfig
    from core.study.run import open_study
    from core.study.presets import preset

    cfg = preset("quick")
    run = open_study(cfg, tmp_path / "study", device="cpu")
    saved = read_json(run.path / "config.json")
    _check_block(saved["provenance"], device="cpu", page=None)
    # the saved config.json (with its provenance) still reads back as the same study, and resumes
    assert StudyConfig.from_dict(saved).identity() == cfg.identity()
    again = open_study(cfg, tmp_path / "study", device="cpu")
    assert again.provenance == saved["provenance"]


def test_provenance_is_not_a_setting():
    """Runs differing only in who ran them are repeats of one setting, and no 'settings differ' row."""
    a = {"kind": "classifier", "arch": "small", "provenance": {"commit": "a" * 40, "command": "python -m core x --seed 0"}}
    b = {"kind": "classifier", "arch": "small", "provenance": {"commit": "b" * 40, "command": "python -m core x --seed 1"}}
    assert settings_of(a) == settings_of(b) == {"arch": "small"}
    assert compare_configs({"a": a, "b": b}).empty


def test_summary_row_for_the_results_page():
    prov = {"commit": "c" * 40, "dirty": True, "git_error": None, "device": "cuda:0", "gpu": "NVIDIA H200", "page": "Train",
            "command": "streamlit run app.py", "versions": {"torch": "2.14.1", "python": "3.11.7"}}
    assert provenance.summary_row("r1", prov) == {"run": "r1", "commit": "c" * 40, "dirty": True, "device": "NVIDIA H200",
                                                  "started by": "page Train", "torch": "2.14.1", "python": "3.11.7"}
    cli = {**prov, "commit": None, "git_error": "git is not installed", "page": None, "gpu": None, "device": "cpu"}
    row = provenance.summary_row("r2", cli)
    assert row["commit"] == "unknown: git is not installed" and row["started by"] == "streamlit run app.py" and row["device"] == "cpu"
    assert provenance.summary_row("old", {}) == {"run": "old", "commit": "not recorded (run made before provenance was kept)"}


def test_app_job_records_its_page_and_results_shows_provenance(app, monkeypatch):
    from core import jobs

    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    at = _page(app, "app_pages/train.py")
    at.number_input(key="cfg_steps").set_value(3)
    _button(at, "Start CFG training").click().run()
    _wait_all()
    from core.store.runs import list_runs

    (run,) = list_runs()
    assert run.provenance["page"] == "Train"
    at = _page(at, "app_pages/results.py")
    table = _frame(at, "started by")
    assert list(table["run"]) == [run.id]
    assert table["started by"].iloc[0] == "page Train"
    assert table["commit"].iloc[0] == (run.provenance["commit"] or f"unknown: {run.provenance['git_error']}")
    assert table["torch"].iloc[0] == metadata.version("torch")
