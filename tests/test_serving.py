"""Serving a class (issue 19): data roots, bounded inputs, the memory estimate, job limits and
owners, and the launcher that refuses a non-loopback host without explicit data roots."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from core.settings import bounds
from core.serving import server as serving, workspace
from core.data import budget
from core.errors import ConfigError, DataError
from core.jobs import INTERACTIVE_LANE, JobManager
from core.store.runs import list_runs
from tests.helpers import make_folder

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ data roots
@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "data" / "cifar").mkdir(parents=True)
    (tmp_path / "data-evil").mkdir()
    (tmp_path / "secret").mkdir()
    return tmp_path


def test_inside_roots_compares_whole_path_parts(tree):
    roots = [(tree / "data").resolve()]
    assert serving.inside_roots(tree / "data", roots)
    assert serving.inside_roots(tree / "data" / "cifar", roots)
    assert serving.inside_roots(tree / "data" / "not-yet-there", roots)
    assert not serving.inside_roots(tree / "data-evil", roots)  # a prefix of the string, not of the path
    assert not serving.inside_roots(tree, roots)


def test_a_path_with_a_nul_is_refused_not_a_crash(tree):
    """Issue 28's upload sweep: a study's data_dir "\\0/etc" raised ValueError (embedded null byte) on the Study page."""
    with pytest.raises(DataError, match="NUL character"):
        serving.check_data_dir(f"{tree}/data/\0/etc", [(tree / "data").resolve()])


def test_dotdot_is_resolved_before_the_check(tree):
    roots = [(tree / "data").resolve()]
    assert not serving.inside_roots(f"{tree}/data/../secret", roots)
    assert not serving.inside_roots(f"{tree}/data/cifar/../../data-evil", roots)
    assert serving.inside_roots(f"{tree}/data/cifar/../cifar", roots)


def test_a_symlink_inside_a_root_that_points_outside_is_refused(tree):
    roots = [(tree / "data").resolve()]
    (tree / "data" / "escape").symlink_to(tree / "secret")
    (tree / "data" / "alias").symlink_to(tree / "data" / "cifar")
    assert not serving.inside_roots(tree / "data" / "escape", roots)
    assert not serving.inside_roots(tree / "data" / "escape" / "x", roots)
    assert serving.inside_roots(tree / "data" / "alias", roots)
    # a root given through a symlink is the folder it points to
    (tree / "link-to-data").symlink_to(tree / "data")
    assert serving.data_roots({serving.ROOTS_VAR: str(tree / "link-to-data")})[1] == (tree / "data").resolve()


def test_roots_from_the_variable_always_keep_the_cache(tree, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tree / "cache"))
    env = {serving.ROOTS_VAR: f"{tree / 'data'}{os.pathsep}{tree / 'secret'}{os.pathsep}{tree / 'data'}{os.pathsep}"}
    assert serving.data_roots(env) == [(tree / "cache").resolve(), (tree / "data").resolve(), (tree / "secret").resolve()]
    assert serving.roots_explicit(env) and not serving.roots_explicit({serving.ROOTS_VAR: "  "})


def test_default_roots_are_cache_shared_data_and_data_when_present(tmp_path, monkeypatch):
    project = tmp_path / "lab"
    project.mkdir()
    monkeypatch.setattr(serving, "PROJECT_ROOT", project)
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    assert serving.data_roots({}) == [(tmp_path / "cache").resolve()]
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (project / "data").mkdir()
    assert serving.data_roots({}) == [(tmp_path / "cache").resolve(), (tmp_path / "shared" / "data").resolve(), (project / "data").resolve()]


def test_outside_a_root_the_error_names_the_variable_and_nothing_inside(tree):
    make_folder(tree / "secret" / "private", classes=("alpha_private_class", "beta_private_class"), per_class=2)
    roots = [(tree / "data").resolve()]
    with pytest.raises(DataError) as err:
        serving.check_data_dir(tree / "secret" / "private", roots)
    text = str(err.value)
    assert serving.ROOTS_VAR in text and "outside" in text and "private_class" not in text
    serving.check_data_dir(tree / "data" / "cifar", roots)  # inside: no error
    serving.check_data_dir(None, roots)  # the embedded/default datasets name no folder


def test_data_dirs_are_found_anywhere_in_a_job_config():
    config = {"data": {"dataset": "imagefolder", "data_dir": "/a"}, "cells": [{"data_dir": "/b"}, {"x": 1}], "data_dir": None}
    assert serving.data_dirs_in(config) == ["/a", "/b"]


# ------------------------------------------------------------------------------ bounds
def test_read_clamps_and_refuses_with_a_note():
    assert bounds.read("image_size", "64") == (64, None)
    v, note = bounds.read("image_size", "8192", label="size")
    assert v == 1024 and "size=8192 is above its maximum (from 4 to 1,024" in note and "1024 is used" in note
    assert bounds.read("seed", "-5")[0] == 0
    for junk in ("nan", "inf", "-1e309", "abc", "", "3.5"):
        v, note = bounds.read("seed", junk)
        assert (junk, v) == (junk, None) and note
    assert bounds.read("ratio", "2.5") == (2.5, None)
    assert bounds.clamp_default("batch_size", 4096) == 1024 and bounds.clamp_default("cfg_lr", None) is None


def test_check_values_refuses_nan_huge_and_too_many():
    bounds.check_values("w", [0.0, 7.5, 50.0], "w values", bounds.MAX_WS)
    for bad in ([float("nan")], [1e308], [-0.5], [1.0] * 17):
        with pytest.raises(ConfigError):
            bounds.check_values("w", bad, "w values", bounds.MAX_WS)


def test_help_text_states_the_bound():
    assert bounds.help_text("batch_size") == "Allowed: from 1 to 1,024 images per step."
    assert bounds.help_text("w", "The paper's w.") == "The paper's w. Allowed: from 0 to 50."


def test_url_values_out_of_range_are_clamped_or_dropped_with_notes():
    notes: list[str] = []
    cfg = workspace.from_params({"dataset": "digits", "size": "8192", "minority": "5", "ratio": "nan", "seed": "12",
                                 "counts": "5,x", "test": "0"}, notes)
    assert (cfg.image_size, cfg.minority_fraction, cfg.ratio, cfg.seed, cfg.counts, cfg.test_fraction) == (1024, 0.95, 10.0, 12, None, 0.05)
    assert len(notes) == 5 and any(n.startswith("size=8192") for n in notes)
    notes = []
    workspace.from_params({"dataset": "digits", "counts": ",".join(["1"] * (bounds.MAX_LIST + 1))}, notes)
    assert len(notes) == 1 and "entries" in notes[0]


def test_every_number_widget_of_the_app_states_its_bound():
    """Pages read numbers through app_pages._serving.number (range and help from core.settings.bounds);
    a bare number_input must at least give the bound in its help text."""
    for page in sorted((ROOT / "app_pages").glob("*.py")):
        if page.name == "_serving.py":
            continue
        src = page.read_text()
        for m in re.finditer(r"number_input\(", src):
            call = src[m.start(): src.find("\n", src.find(")", m.start()))]
            assert "help=bounds.help_text(" in call, f"{page.name}: {call}"


def test_upload_limit_agrees_with_the_archive_limits():
    from core.data.archive import DEFAULT_LIMITS, MAX_UPLOAD_MB

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB == 1024
    assert MAX_UPLOAD_MB * 1024**2 <= DEFAULT_LIMITS.max_bytes


# ------------------------------------------------------------------------------ memory estimate
def test_estimate_counts_the_float32_resize():
    assert budget.array_bytes(60_000, 3, 32, 1024, per_file=False) == (944_640_000_000, "whole-split float32 resize")
    assert budget.estimate("cifar10", None, None).bytes == 2 * 60_000 * 3 * 32 * 32 == 368_640_000
    assert budget.estimate("digits", None, None).bytes == 1797 * (64 * 5 + 256 * 5) == 2_875_200


def test_estimate_of_a_folder_reads_every_header(tmp_path):
    root = make_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=4, size=(10, 10))
    # 3·n·c·size² for the decoded list, the stack and the copy, plus 8 decoding threads' RGBA buffers (before and after resizing)
    assert budget.estimate("imagefolder", str(root), None).bytes == 3 * 12 * 3 * 10 * 10 + 8 * 100 * 8 == 17_200
    assert budget.estimate("imagefolder", str(root), 20).bytes == 43_200 + 6_400
    assert budget.estimate("imagefolder", str(tmp_path / "x.zip"), 20) is None


def test_over_the_budget_is_refused_with_the_estimate(monkeypatch):
    monkeypatch.delenv(budget.BUDGET_VAR, raising=False)
    with pytest.raises(DataError) as err:
        budget.check_budget("cifar10", None, 1024)
    assert "879.76 GB" in str(err.value) and "8.00 GB" in str(err.value) and budget.BUDGET_VAR in str(err.value)
    assert budget.check_budget("cifar10", None, 64).bytes == 4_608_000_000  # 4.29 GB: inside the default 8 GB
    with pytest.raises(DataError):
        budget.check_budget("cifar10", None, 64, env={budget.BUDGET_VAR: "4"})
    assert budget.budget_bytes({budget.BUDGET_VAR: "0.5"}) == 536_870_912
    with pytest.raises(ConfigError):
        budget.budget_bytes({budget.BUDGET_VAR: "-1"})


# ------------------------------------------------------------------------------ job limits, owners
def test_limits_from_the_environment():
    assert serving.JobLimits.from_env({}) == serving.JobLimits(4, 16, 2)
    assert serving.JobLimits.from_env({serving.PER_SESSION_VAR: "7", serving.PER_SERVER_VAR: "9"}) == serving.JobLimits(7, 9, 2)
    with pytest.raises(ConfigError, match=serving.PER_SERVER_VAR):
        serving.JobLimits.from_env({serving.PER_SERVER_VAR: "0"})


@pytest.fixture()
def blocking(tmp_path):
    release = threading.Event()

    def runner(ctx):
        while not release.is_set() and not ctx.should_stop():
            release.wait(0.02)

    owner = {"now": "A"}
    mgr = JobManager(root=tmp_path / "runs", devices=["cpu"], runners={"blk": runner},
                     limits=serving.JobLimits(per_session=2, per_server=3, interactive_per_session=1), owner_fn=lambda: owner["now"])
    yield mgr, owner
    release.set()
    mgr.shutdown()


def test_limits_per_session_and_per_server_create_nothing_past_them(blocking):
    mgr, owner = blocking
    a1, a2 = mgr.submit("blk", {"i": 1}), mgr.submit("blk", {"i": 2})
    assert (a1.owner, a2.owner) == ("A", "A")
    with pytest.raises(ConfigError, match=serving.PER_SESSION_VAR):
        mgr.submit("blk", {"i": 3})
    assert len(list_runs(mgr.root)) == 2  # nothing was created
    owner["now"] = "B"
    mgr.submit("blk", {"i": 4})
    owner["now"] = "C"
    with pytest.raises(ConfigError, match=serving.PER_SERVER_VAR):
        mgr.submit("blk", {"i": 5})
    assert len(list_runs(mgr.root)) == 3
    # the interactive lane has its own limit, counted apart from the trainings
    p1 = mgr.submit("blk", {"i": 6}, lane=INTERACTIVE_LANE)
    with pytest.raises(ConfigError, match=serving.INTERACTIVE_VAR):
        mgr.submit("blk", {"i": 7}, lane=INTERACTIVE_LANE)
    assert p1.owner == "C" and len(list_runs(mgr.root)) == 4
    # a finished (cancelled) job frees its place
    owner["now"] = "A"
    assert mgr.cancel(a1.id, owner="A")
    mgr.wait(a1.id, 10)
    assert mgr.submit("blk", {"i": 8}).owner == "A"


def test_a_session_cancels_only_its_own_jobs(blocking):
    mgr, owner = blocking
    job = mgr.submit("blk", {"i": 1})
    with pytest.raises(ConfigError, match="another browser session"):
        mgr.cancel(job.id, owner="B")
    assert job.active and not job.cancel_event.is_set()
    assert mgr.cancel(job.id)  # the CLI and shutdown name no owner
    assert mgr.wait(job.id, 10).state == "cancelled"


def test_admit_refuses_before_anything_is_created(tmp_path):
    def admit(kind, config):
        serving.check_data_dir(config["data"]["data_dir"], [tmp_path / "allowed"])

    mgr = JobManager(root=tmp_path / "runs", devices=["cpu"], runners={"blk": lambda ctx: None}, admit=admit)
    try:
        with pytest.raises(DataError, match=serving.ROOTS_VAR):
            mgr.submit("blk", {"data": {"dataset": "imagefolder", "data_dir": str(tmp_path / "secret")}})
        assert list_runs(mgr.root) == []
        job = mgr.submit("blk", {"data": {"dataset": "imagefolder", "data_dir": str(tmp_path / "allowed" / "x")}})
        assert mgr.wait(job.id, 10).state == "done" and job.owner is None
    finally:
        mgr.shutdown()


# ------------------------------------------------------------------------------ exposure
@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
                                       ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.5", False), ("lab.example.org", False)])
def test_is_loopback(host, loop):
    assert serving.is_loopback(host) is loop


def test_token_matches():
    assert serving.token_matches("s3cret", "s3cret")
    assert not serving.token_matches("s3cre", "s3cret") and not serving.token_matches(None, "s3cret") and not serving.token_matches("", "s3cret")


def _launch(args, **env_extra):
    env = {k: v for k, v in os.environ.items() if k not in (serving.ROOTS_VAR, serving.TOKEN_VAR)}
    return subprocess.run([sys.executable, "-m", "core", "app", *args], cwd=ROOT, env={**env, **env_extra},
                          capture_output=True, text=True, timeout=120)


def test_launcher_refuses_a_non_loopback_host_without_roots(tmp_path):
    # no --check: without the refusal it would start a server (and this test would time out)
    out = _launch(["--host", "0.0.0.0", "--port", "8799"])
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Refusing to serve on 0.0.0.0" in out.stderr and serving.ROOTS_VAR in out.stderr
    ok = _launch(["--host", "0.0.0.0", "--port", "8799", "--check"], IMBALANCE_LAB_DATA_ROOTS=str(tmp_path), IMBALANCE_LAB_TOKEN="t")
    assert ok.returncode == 0, ok.stderr
    assert f"data it may read ({serving.ROOTS_VAR}): " in ok.stdout and str(tmp_path.resolve()) in ok.stdout
    assert "required, once per browser session" in ok.stdout and "--server.address 0.0.0.0 --server.port 8799" in ok.stdout
    local = _launch(["--check"])
    assert local.returncode == 0 and "every machine" not in local.stdout  # loopback: nothing exposed, nothing printed
    proxied = _launch(["--shared", "--check"])  # loopback behind a reverse proxy, serving a class: the same rule
    assert proxied.returncode == 2 and "for a class (--shared)" in proxied.stderr


def test_make_run_goes_through_the_launcher():
    make = (ROOT / "Makefile").read_text()
    assert "$(PY) -m core app --host $(HOST) --port $(PORT) $(if $(SHARED),--shared,)" in make


def test_launcher_passes_the_apps_config_as_flags(tmp_path, monkeypatch):
    # an installed copy runs from the user's folder, where Streamlit would not find .streamlit/config.toml
    from core.commands import app as launcher

    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text(
        '[server]\naddress = "127.0.0.1"\nmaxUploadSize = 1024\n[runner]\npostScriptGC = false\n')
    monkeypatch.setattr(launcher, "app_dir", lambda: tmp_path)
    cmd = launcher.streamlit_command("0.0.0.0", 8600)
    assert cmd[2:5] == ["streamlit", "run", str(tmp_path / "app.py")]
    assert cmd[5:] == ["--server.maxUploadSize", "1024", "--runner.postScriptGC", "false",
                       "--server.address", "0.0.0.0", "--server.port", "8600"]  # the config's address gives way to --host
