"""The interactive lane on a shared server (issue 28): a server-wide cap, so a few tabs cannot hold
every training paused, and judge training (the first guidance sweep on a dataset) that stops at Cancel."""

from __future__ import annotations

import threading

import pytest

from core.serving import server as serving
from core.errors import Cancelled, ConfigError
from core.jobs import INTERACTIVE_LANE, JobManager


def test_the_interactive_lane_has_a_server_wide_cap(tmp_path):
    release = threading.Event()

    def slow(ctx):
        while not release.is_set() and not ctx.should_stop():
            release.wait(0.02)

    limits = serving.JobLimits(per_session=4, per_server=16, interactive_per_session=2, interactive_per_server=3)
    assert serving.JobLimits.from_env({serving.INTERACTIVE_SERVER_VAR: "3"}).interactive_per_server == 3
    mgr = JobManager(root=tmp_path / "runs", devices=["cpu"], runners={"generate": slow}, limits=limits)
    try:
        for owner in ("a", "a", "b"):
            mgr.submit("generate", {"n": 1}, lane=INTERACTIVE_LANE, owner=owner)
        with pytest.raises(ConfigError, match=rf"3 previews queued or running from everyone; the limit is 3 \({serving.INTERACTIVE_SERVER_VAR}\)"):
            mgr.submit("generate", {"n": 2}, lane=INTERACTIVE_LANE, owner="c")
        assert len(mgr.active()) == 3
    finally:
        release.set()
        mgr.shutdown()


def test_judge_training_stops_when_its_job_is_cancelled():
    from core.data.loading import DataConfig, load_dataset
    from core.metrics.judge import train_judge

    ds = load_dataset(DataConfig(dataset="digits"))
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(Cancelled, match="judge training cancelled at step 3"):
        train_judge(ds.train, ds.test, batch_size=32, device="cpu", should_stop=stop)


def test_a_model_named_by_a_study_must_be_inside_the_roots_or_known(tmp_path):
    from core.errors import DataError

    roots = [tmp_path / "data", tmp_path / "models"]
    (tmp_path / "models" / "my-sd").mkdir(parents=True)
    known = ["stable-diffusion-v1-5/stable-diffusion-v1-5"]
    config = {"method_params": {"sd": {"model": "/etc"}}, "data": {"data_dir": None}}
    assert serving.model_refs_in(config) == ["/etc"]
    with pytest.raises(DataError, match="outside the folders"):
        serving.check_model_ref("/etc", roots, known, downloads=False)
    with pytest.raises(DataError, match="outside the folders"):
        serving.check_model_ref(f"{tmp_path}/models/../../", roots, known, downloads=False)
    serving.check_model_ref(str(tmp_path / "models" / "my-sd"), roots, known, downloads=False)
    serving.check_model_ref(known[0], roots, known, downloads=False)
    with pytest.raises(DataError, match=serving.DOWNLOADS_VAR):
        serving.check_model_ref("someone/huge-model", roots, known, downloads=False)
    serving.check_model_ref("someone/huge-model", roots, known, downloads=True)


def test_a_shared_server_ignores_a_studys_device_and_lanes_with_a_note():
    import dataclasses

    from core.study.presets import preset
    from core.study.start import for_shared_server

    cfg = dataclasses.replace(preset("quick"), device="cuda:7", cpu_lanes=8)
    out, notes = for_shared_server(cfg)
    assert out.device is None and out.cpu_lanes is None and len(notes) == 2
    assert "device = 'cuda:7' is ignored" in notes[0] and "cpu_lanes = 8 is ignored" in notes[1]
    assert for_shared_server(dataclasses.replace(cfg, device=None, cpu_lanes=None))[1] == []


def test_app_check_shows_every_budget_and_its_setting():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "IMBALANCE_LAB_MAX_STEPS_PER_USER": "1234", "IMBALANCE_LAB_DISK_PER_USER_GB": "2.5"}
    out = subprocess.run([sys.executable, "-m", "core", "app", "--check"], cwd=Path(__file__).resolve().parent.parent, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for line in ("IMBALANCE_LAB_MEMORY_BUDGET_GB = ", "IMBALANCE_LAB_MAX_IMAGE_PIXELS = 16,777,216 px", "IMBALANCE_LAB_MAX_STEPS_PER_USER = 1,234 steps",
                 "IMBALANCE_LAB_DISK_PER_USER_GB = 2.5 GB", "IMBALANCE_LAB_DISK_GB = 32 GB", "IMBALANCE_LAB_MAX_INTERACTIVE = 4",
                 "IMBALANCE_LAB_ALLOW_DOWNLOADS = no", "IMBALANCE_LAB_USERS = unset"):
        assert line in out.stdout, (line, out.stdout)
    bad = subprocess.run([sys.executable, "-m", "core", "app", "--check"], cwd=Path(__file__).resolve().parent.parent,
                         env={**env, "IMBALANCE_LAB_MAX_STEPS_PER_USER": "lots"}, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "IMBALANCE_LAB_MAX_STEPS_PER_USER='lots'" in bad.stderr + bad.stdout
