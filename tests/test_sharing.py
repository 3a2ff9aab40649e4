"""Safe to share, safe to repeat (issue 30 item 4): atomic writes leave the mode a plain write
would (colleagues on a shared disk can read a report), and one process at a time runs a study folder."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.store.atomic import atomic_write, atomic_write_bytes, atomic_write_json
from core.cli import main
from core.errors import ConfigError
from core.study.lock import holder_path, study_lock

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "tests" / "fixtures" / "kill_study.toml"


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def test_atomic_writes_keep_the_umasks_mode(tmp_path, umask):
    umask(0o022)
    atomic_write_json(tmp_path / "config.json", {"a": 1})
    atomic_write(tmp_path / "report.html", lambda tmp: Path(tmp).write_text("<html/>"))
    with open(tmp_path / "plain.txt", "w") as f:  # what a normal write gives, for comparison
        f.write("x")
    assert _mode(tmp_path / "config.json") == _mode(tmp_path / "report.html") == _mode(tmp_path / "plain.txt") == 0o644
    umask(0o007)  # a group-shared disk
    atomic_write_bytes(tmp_path / "group.bin", b"x")
    assert _mode(tmp_path / "group.bin") == 0o660
    umask(0o077)
    atomic_write_bytes(tmp_path / "private.bin", b"x")
    assert _mode(tmp_path / "private.bin") == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_rewrite_keeps_the_files_own_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "results.json"
    target.write_text("{}")
    os.chmod(target, 0o640)  # its owner narrowed it: a rewrite keeps that, as open(..., "w") does
    atomic_write_json(target, {"b": 2})
    assert _mode(target) == 0o640 and target.read_text().strip().endswith("}")


def _holder(folder: Path, seconds: float) -> subprocess.Popen:
    code = ("import sys, time; from core.study.lock import study_lock\n"
            f"with study_lock({str(folder)!r}):\n    print('held', flush=True); time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_experiment_on_the_same_folder_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "study"
    holder = _holder(out, 120)
    try:
        assert main(["experiment", "--config", str(STUDY), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"being run by process {holder.pid} on " in err and "-c" in err, err
        assert "Wait for it to finish" in err
        assert not out.exists()  # nothing was started: the lock sits beside the folder
        with pytest.raises(ConfigError, match=f"process {holder.pid}"):
            with study_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with study_lock(out):  # the kernel dropped a killed holder's lock: no stale lock to clean by hand
        assert holder_path(out).exists() and not out.exists()
    assert not holder_path(out).exists()


def test_a_waiting_process_gets_the_folder_when_the_holder_ends(tmp_path):
    out = tmp_path / "study"
    holder = _holder(out, 1.0)
    t0 = time.time()
    try:
        with study_lock(out, wait=120):
            waited = time.time() - t0
            assert holder.poll() is not None or holder.wait(timeout=5) == 0
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert waited > 0.3  # it waited for the holder instead of running beside it
