"""Faults in studies (issue 19 §6): a study killed with SIGKILL resumes losing at most the cell
that was running, and a full disk gives a clear error while the previous file stays loadable.

The full disk is simulated by patching the writers to fail the way they fail for real: the
error texts below were seen on a full 64 KiB tmpfs (open/write: OSError ENOSPC; safetensors:
SafetensorError "... No space left on device (os error 28)"; torch.save: a RuntimeError that
names no cause, so the disk's free space is asked).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import SafetensorError

from core.store.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from core.cli import main
from core.data.imageset import ImageSet
from core.errors import DiskFullError

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "tests" / "fixtures" / "kill_study.toml"
CELLS = ["cfg-train__seed0", "fill__oversample__seed0", "fill__cfg_w0.1__seed0",
         "clf__none__small__seed0", "clf__oversample__small__seed0", "clf__cfg_w0.1__small__seed0"]
STATES = {"ok", "failed", "unavailable", "cancelled"}
ST_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"


def _kept_files(study: Path) -> dict[Path, tuple[int, bytes]]:
    """Every finished artefact a resume must not rewrite: cell results, generated sets, CFG weights."""
    files = [*study.glob("cells/*/results.json"), *study.glob("sets/*.safetensors"), *study.glob("cfg/seed0/checkpoints/*/weights.safetensors")]
    return {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in files}


def _worked_on(stderr: str, label_to_id: dict[str, str]) -> set[str]:
    """Cells that did work in a run: a finished cell returns at once and prints only its state."""
    out = set()
    for line in stderr.splitlines():
        m = re.match(r"\[\d+/\d+ cells\] (.+?): (.+)$", line)
        if m and m.group(1) in label_to_id and m.group(2).split(" on ")[0] not in STATES:
            out.add(label_to_id[m.group(1)])
    return out


def test_sigkill_mid_study_then_the_same_command_resumes(tmp_path):
    study = tmp_path / "study"
    cmd = [sys.executable, "-m", "core", "-v", "experiment", "--config", str(STUDY), "--out", str(study), "--json"]  # -v: a line per cell event
    first_done = study / "cells" / CELLS[0] / "results.json"
    with open(tmp_path / "first.err", "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.time() + 300  # one tiny cell; generous for a loaded 2-core machine
            while not first_done.exists():
                assert proc.poll() is None, (tmp_path / "first.err").read_text()[-2000:]
                assert time.time() < deadline, "the first cell did not finish within 300 s"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    status = json.loads((study / "status.json").read_text())
    assert list(status["cells"]) == CELLS
    done = {c for c in CELLS if (study / "cells" / c / "results.json").exists()}
    started = {c for c, e in status["cells"].items() if e["state"] == "running"} - done
    assert CELLS[0] in done and len(done) < len(CELLS)  # killed in the middle
    assert len(started) <= 1  # the one cell whose work the kill can lose
    assert not (study / "results.json").exists()
    # what a kill leaves is whole: every file under its final name parses (only *.tmp may be torn)
    for f in study.rglob("*.json"):
        json.loads(f.read_text())
    for f in study.rglob("*.safetensors"):
        from safetensors.torch import load_file

        load_file(str(f))
    kept = _kept_files(study)

    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-2000:]
    res = json.loads(again.stdout)
    assert res["state"] == "done" and res["cells"] == {"ok": 6, "failed": 0, "unavailable": 0, "cancelled": 0}
    assert {r["method"]: r["state"] for r in res["rows"]} == {"none": "ok", "oversample": "ok", "cfg@w=0.1": "ok"}
    labels = {e["label"]: c for c, e in status["cells"].items()}
    assert _worked_on(again.stderr, labels) == set(CELLS) - done  # the finished cells were not run again
    assert {f: v for f, v in _kept_files(study).items() if f in kept} == kept  # and nothing they saved was rewritten
    assert json.loads((study / "status.json").read_text())["state"] == "done"


# ---------------------------------------------------------------- a full disk
def _fail_after_half(real_writer, error: Exception):
    """A writer that writes half its file, as a filling disk does, then raises ``error``."""

    def write(obj, path, *a, **k):
        real_writer(obj, path, *a, **k)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise error

    return write


Case = namedtuple("Case", "target error low_space file")
CHECKPOINT_CASES = [
    Case("core.store.checkpoint.save_file", SafetensorError(ST_FULL), False, "weights.safetensors"),
    Case("torch.save", RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"), True, "state.pt"),
]


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=["safetensors", "torch.save"])
def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, case):
    root = tmp_path / "checkpoints"
    save_checkpoint(root, "latest", {"w": torch.full((64,), 1.0)}, {"step": 10}, {"kind": "test"})
    module, _, name = case.target.rpartition(".")
    real = getattr(sys.modules[module], name)
    monkeypatch.setattr(sys.modules[module], name, _fail_after_half(real, case.error))
    if case.low_space:  # torch.save's error names no cause: the disk's free space says it is full
        monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 4096))
    with pytest.raises(DiskFullError) as info:
        save_checkpoint(root, "latest", {"w": torch.full((64,), 2.0)}, {"step": 20}, {"kind": "test"})
    assert str(info.value).startswith(f"The disk is full: could not write {root / 'latest' / case.file} (")
    assert "Free space on that disk" in str(info.value)
    assert sorted(p.name for p in root.iterdir()) == ["latest"]  # the partial folder is gone
    monkeypatch.undo()
    weights, state, _ = load_checkpoint(checkpoint_path(root))
    assert state["step"] == 10 and torch.equal(weights["w"], torch.full((64,), 1.0))


def test_a_failed_write_with_room_on_the_disk_is_not_called_full(tmp_path, monkeypatch):
    from core.store.atomic import atomic_write

    (tmp_path / "f.txt").write_text("old")

    def broken(tmp):
        raise RuntimeError("a bug, not the disk")

    with pytest.raises(RuntimeError, match="a bug"):
        atomic_write(tmp_path / "f.txt", broken)
    assert (tmp_path / "f.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def _imageset(value: int, n: int = 6) -> ImageSet:
    return ImageSet(torch.full((n, 1, 4, 4), value, dtype=torch.uint8), torch.arange(n) % 3, ["a", "b", "c"],
                    np.array(["oversample"] * n, dtype=object))


def test_full_disk_while_writing_a_fill_keeps_the_previous_set(tmp_path, monkeypatch):
    import safetensors.torch

    from core.study.cells import load_generated as _load_generated, save_generated as _save_generated

    path = tmp_path / "sets" / "oversample__seed0.safetensors"
    _save_generated(path, _imageset(7))
    monkeypatch.setattr(safetensors.torch, "save_file", _fail_after_half(safetensors.torch.save_file, SafetensorError(ST_FULL)))
    with pytest.raises(DiskFullError) as info:
        _save_generated(path, _imageset(9, n=12))
    assert str(info.value).startswith(f"The disk is full: could not write {path} (SafetensorError: {ST_FULL}).")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    back = _load_generated(path)
    assert len(back) == 6 and int(back.images.max()) == 7 and back.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_full_disk_while_writing_results_json_keeps_the_previous_results(tmp_path, monkeypatch, capsys):
    import builtins

    import core.store.atomic

    cfg = tmp_path / "s.toml"
    cfg.write_text('name = "disk"\nmethods = ["none", "oversample"]\nseeds = [0]\ngeneration_metrics = false\n'
                   '[data]\ndataset = "digits"\nprofile = "custom"\ncounts = [4, 6, 8, 10, 12, 14, 16, 18, 20, 40]\n'
                   '[classifier]\nsteps = 2\nbatch_size = 32\neval_every = 0\n')
    study = tmp_path / "study"
    assert main(["experiment", "--config", str(cfg), "--out", str(study), "--json"]) == 0
    before = (study / "results.json").read_bytes()
    capsys.readouterr()

    class HalfFull:
        """The temp file of results.json: takes half of what is written, then the disk is full."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(file, mode="r", *a, **k):
        f = builtins.open(file, mode, *a, **k)
        return HalfFull(f) if "w" in mode and Path(file).name.startswith(".results.json.") else f

    monkeypatch.setattr(core.store.atomic, "open", fake_open, raising=False)
    assert main(["experiment", "--config", str(cfg), "--out", str(study), "--json"]) == 3  # a full disk: a lab error (README, Exit codes)
    err = capsys.readouterr().err
    assert f"error: The disk is full: could not write {study / 'results.json'} (OSError: [Errno 28] No space left on device)." in err
    assert (study / "results.json").read_bytes() == before  # the previous results, whole
    assert json.loads(before)["state"] == "done"
    assert not list(study.glob(".results.json.*"))
    status = json.loads((study / "status.json").read_text())
    assert status["state"] == "failed" and status["error"].startswith("The disk is full")
