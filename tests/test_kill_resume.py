"""A training process killed with SIGKILL mid-run loses nothing saved and resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.checkpoint import checkpoint_path, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _steps(run: Path) -> list[int]:
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line torn by the kill
    return [r["step"] for r in rows if "loss" in r]  # one row per 25 steps (log_every)


def test_sigkill_mid_training_then_resume(tmp_path):
    run = tmp_path / "cfg-run"
    cmd = [sys.executable, "-m", "core", "train-cfg", "--dataset", "digits", "--profile", "paper", "--preset", "tiny",
           "--batch-size", "16", "--checkpoint-every", "25", "--preview-every", "0", "--preview-steps", "2", "--out", str(run), "--quiet"]
    proc = subprocess.Popen([*cmd, "--steps", "5000"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            ck = checkpoint_path(run / "checkpoints")
            if ck is not None and load_checkpoint(ck)[1]["step"] >= 50:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.5)
        else:
            raise AssertionError("no checkpoint at step >= 50 within 300 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved_step = load_checkpoint(checkpoint_path(run / "checkpoints"))[1]["step"]
    logged_before = _steps(run)
    assert saved_step >= 50 and logged_before and max(logged_before) >= saved_step

    out = subprocess.run([*cmd, "--resume", "--steps", str(saved_step + 25)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == saved_step + 25
    after = _steps(run)
    assert after[: len(logged_before)] == logged_before  # nothing already written was lost
    resumed = after[len(logged_before):]
    assert resumed and min(resumed) > saved_step and max(resumed) == saved_step + 25
