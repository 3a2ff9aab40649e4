"""JobManager: queueing, cancel, failure capture (incl. OOM), restart -> interrupted, resume."""

from __future__ import annotations

import json
import threading
import time

import pytest

from core.errors import ConfigError, DataError
from core.jobs import JobManager, format_eta, is_oom
from core.store.runs import Run, list_runs


def _steps(n=5, sleep=0.0):
    def runner(ctx):
        for i in range(n):
            if ctx.should_stop():
                return {"stopped_at": i}
            ctx.run.log_metrics({"step": i, "loss": 1.0 / (i + 1)})
            ctx.callbacks.metrics({"step": i, "loss": 1.0 / (i + 1)})
            ctx.progress(i + 1, n, f"step {i + 1}")
            time.sleep(sleep)
        return {"resume": ctx.resume}

    return runner


@pytest.fixture()
def make_manager(tmp_path):
    made = []

    def make(runners, devices=("cpu",)):
        m = JobManager(root=tmp_path / "runs", devices=list(devices), runners=runners)
        made.append(m)
        return m

    yield make
    for m in made:
        m.shutdown()


def test_job_runs_to_done_and_writes_run_folder(make_manager):
    m = make_manager({"fake": _steps(4)})
    job = m.submit("fake", {"x": 1}, name="first")
    job = m.wait(job.id, 10)
    assert job.state == "done" and job.step == job.total == 4
    assert job.result == {"resume": False}
    run = Run(job.run.path)
    assert run.config["kind"] == "fake" and run.config["x"] == 1
    st = run.status
    assert st["state"] == "done" and st["step"] == 4 and st["owner"] is None
    assert list(run.metrics()["loss"]) == [1.0, 0.5, 1 / 3, 0.25]
    assert job.latest_metrics["step"] == 3


def test_second_job_queues_behind_the_first_on_one_device(make_manager):
    gate = threading.Event()
    order = []

    def blocking(ctx):
        order.append(("start", ctx.run.id))
        gate.wait(10)
        order.append(("end", ctx.run.id))

    m = make_manager({"block": blocking})
    a = m.submit("block", {})
    b = m.submit("block", {})
    deadline = time.time() + 5
    while m.get(a.id).state != "running" and time.time() < deadline:
        time.sleep(0.01)
    assert m.get(a.id).state == "running"
    assert m.get(b.id).state == "queued" and "behind 1" in m.get(b.id).message
    assert Run(b.run.path).status["state"] == "queued"
    gate.set()
    m.wait(b.id, 10)
    assert [e for e, _ in order] == ["start", "end", "start", "end"]
    assert order[0][1] == a.id and order[2][1] == b.id


def test_two_devices_run_in_parallel(make_manager):
    started = threading.Barrier(2, timeout=5)

    def both(ctx):
        started.wait()  # deadlocks (BrokenBarrierError) unless both jobs run at once
        return ctx.device

    m = make_manager({"both": both}, devices=("cuda:0", "cuda:1"))
    a, b = m.submit("both", {}), m.submit("both", {})
    assert {m.wait(a.id, 10).result, m.wait(b.id, 10).result} == {"cuda:0", "cuda:1"}
    assert m.get(a.id).state == m.get(b.id).state == "done"


def test_cancel_running_and_queued(make_manager):
    m = make_manager({"slow": _steps(1000, sleep=0.01)})
    a = m.submit("slow", {})
    b = m.submit("slow", {})
    while m.get(a.id).step < 2:
        time.sleep(0.01)
    assert m.cancel(b.id)
    assert m.get(b.id).state == "cancelled" and Run(b.run.path).status["state"] == "cancelled"
    assert m.cancel(a.id)
    job = m.wait(a.id, 10)
    assert job.state == "cancelled" and job.result["stopped_at"] < 1000
    assert Run(a.run.path).status["state"] == "cancelled"
    assert not m.cancel(a.id)  # already finished


def test_failures_are_captured_and_the_worker_keeps_serving(make_manager):
    def lab_error(ctx):
        raise DataError("Class 'cat' has no images.", "Add images.")

    def bug(ctx):
        raise ValueError("boom")

    def oom(ctx):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def missing(ctx):
        import core.does_not_exist_yet  # noqa: F401

    m = make_manager({"lab": lab_error, "bug": bug, "oom": oom, "missing": missing, "ok": _steps(2)})
    jobs = {k: m.submit(k, {}) for k in ("lab", "bug", "oom", "missing", "ok")}
    res = {k: m.wait(j.id, 10) for k, j in jobs.items()}
    assert res["lab"].state == "failed" and res["lab"].error == "Class 'cat' has no images. Fix: Add images."
    assert res["bug"].state == "failed" and "ValueError: boom" in res["bug"].error and "raise ValueError" in res["bug"].traceback
    assert res["oom"].state == "failed" and res["oom"].error.startswith("Out of memory on cpu") and "lower the batch size" in res["oom"].error
    assert res["missing"].state == "failed" and "not available yet" in res["missing"].error
    assert res["ok"].state == "done"
    st = Run(jobs["bug"].run.path).status
    assert st["state"] == "failed" and "boom" in st["error"] and "Traceback" in st["traceback"]


def test_is_oom_and_eta_format():
    assert is_oom(MemoryError()) and is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_oom(RuntimeError("shape mismatch"))
    assert format_eta(None) == "ETA …" and format_eta(42) == "ETA 42s" and format_eta(125) == "ETA 2m 05s" and format_eta(7260) == "ETA 2h 01m"


def test_eta_from_step_rate(make_manager):
    gate = threading.Event()

    def half(ctx):
        ctx.progress(0, 100)
        time.sleep(0.2)
        ctx.progress(50, 100)
        gate.wait(5)

    m = make_manager({"half": half})
    job = m.submit("half", {})
    while m.get(job.id).step < 50:
        time.sleep(0.01)
    eta = m.get(job.id).eta_s
    assert eta is not None and 0.1 < eta < 2.0  # ~0.2 s for the remaining 50 steps
    gate.set()
    m.wait(job.id, 5)


def test_unknown_kind_and_device_are_refused(make_manager):
    m = make_manager({"ok": _steps(1)})
    with pytest.raises(ConfigError, match="No runner is registered for job kind 'nope'"):
        m.submit("nope", {})
    with pytest.raises(ConfigError, match="Unknown device"):
        m.submit("ok", {}, device="cuda:7")
    assert list_runs(m.root) == []  # nothing was created
    # a device the manager has is taken as asked, not refused and not re-picked by load
    m2 = make_manager({"ok": _steps(1)}, devices=("cpu", "cuda:1"))
    job = m2.submit("ok", {}, device="cuda:1")
    assert job.device == "cuda:1"
    assert m2.wait(job.id, 10).state == "done"


def test_registered_runners_overrides_and_a_kind_that_lost_its_runner(make_manager, monkeypatch):
    from core.jobs import kinds as jobs_mod  # where the registry lives (core.jobs re-exports its public names)

    monkeypatch.setattr(jobs_mod, "_REGISTERED", {})
    monkeypatch.setattr(jobs_mod, "RUNNERS", {})
    assert jobs_mod.register_runner("echo", lambda ctx: {"by": "owner", **ctx.config}) is not None
    m = make_manager(None)  # no runners=: the module registry
    assert m.kinds() == ["echo"]
    assert m.wait(m.submit("echo", {"x": 1}).id, 10).result == {"by": "owner", "x": 1}
    jobs_mod.RUNNERS["echo"] = lambda ctx: {"by": "fake"}  # a test's fake wins over the owner's runner
    assert m.wait(m.submit("echo", {}).id, 10).result == {"by": "fake"}
    with pytest.raises(ConfigError, match="not callable"):
        jobs_mod.register_runner("bad", None)
    # a queued job whose kind has lost its runner fails at start, naming the kind
    gate = threading.Event()
    runners = {"hang": lambda ctx: gate.wait(10), "gone": _steps(1)}
    m2 = make_manager(runners)
    m2.submit("hang", {})
    job = m2.submit("gone", {})
    del runners["gone"]
    gate.set()
    assert m2.wait(job.id, 10).state == "failed"
    assert "No runner is registered for job kind 'gone'" in m2.get(job.id).message


def test_importing_job_runners_registers_the_lab_kinds(make_manager):
    import core.jobs.runners  # noqa: F401  (registers at import)

    assert set(make_manager(None).kinds()) >= {"cfg", "classifier", "generate", "balance", "guidance", "study"}


def test_restart_marks_orphans_interrupted_and_resume_continues(tmp_path):
    root = tmp_path / "runs"
    gate = threading.Event()

    def hang(ctx):
        ctx.progress(3, 10)
        gate.wait(10)

    m1 = JobManager(root=root, devices=["cpu"], runners={"train": hang})
    a = m1.submit("train", {"lr": 0.1})
    b = m1.submit("train", {"lr": 0.2})
    while m1.get(a.id).state != "running":
        time.sleep(0.01)
    # Simulate the server process dying: the manager vanishes without finishing its jobs.
    from core.jobs import records as store_mod

    store_mod._LIVE_MANAGERS.discard(m1.token)
    seen = []

    def record(ctx):
        seen.append((ctx.run.id, ctx.resume, ctx.config["lr"]))

    m2 = JobManager(root=root, devices=["cpu"], runners={"train": record})
    try:
        assert sorted(m2.interrupted) == sorted([a.id, b.id])
        assert Run(a.run.path).status["state"] == "interrupted"
        assert Run(b.run.path).status["state"] == "interrupted"
        job = m2.wait(m2.resume(a.id).id, 10)
        assert job.state == "done" and seen == [(a.id, True, 0.1)]
        with pytest.raises(ConfigError, match="cannot be resumed"):
            m2.resume(a.id)  # done now
    finally:
        gate.set()
        m2.shutdown()
        m1.shutdown()


def test_live_manager_runs_are_not_marked_interrupted(tmp_path):
    root = tmp_path / "runs"
    gate = threading.Event()
    m1 = JobManager(root=root, devices=["cpu"], runners={"hang": lambda ctx: gate.wait(10)})
    a = m1.submit("hang", {})
    m2 = JobManager(root=root, devices=["cpu"], runners={})
    try:
        assert m2.interrupted == []
        assert Run(a.run.path).status["state"] in ("queued", "running")
    finally:
        gate.set()
        m1.shutdown()
        m2.shutdown()


def test_removed_run_folder_fails_only_that_job(make_manager):
    import shutil

    gate = threading.Event()
    m = make_manager({"hang": lambda ctx: gate.wait(10), "ok": _steps(1)})
    a = m.submit("hang", {})
    b = m.submit("ok", {})
    c = m.submit("ok", {})
    shutil.rmtree(b.run.path)
    gate.set()
    assert m.wait(b.id, 10).state == "failed" and "removed" in m.get(b.id).message
    assert m.wait(c.id, 10).state == "done" and m.get(a.id).state == "done"
    with pytest.raises(ConfigError, match="no longer exists"):
        m.resume(b.id)


# ------------------------------------------------------------ the real runners, tiny
def _digits(profile="paper"):
    return {"dataset": "digits", "profile": profile}


def test_real_balance_then_classifier_on_the_saved_set(make_manager):
    from core.jobs.runners import BALANCED, CLS_KIND, DEFAULT_RUNNERS, load_imageset

    m = make_manager(DEFAULT_RUNNERS)
    bal = m.wait(m.submit("balance", {"data": _digits(), "method": "cutmix", "params": {"lam": 0.6}, "target": None, "seed": 2}).id, 60)
    assert bal.state == "done", bal.error
    s = load_imageset(bal.run.path / BALANCED)
    assert len(set(s.counts())) == 1 and bal.result["added"] == int((s.provenance == "cutmix").sum()) > 0
    cfg = {"data": _digits(), "arch": "small", "epochs": 1, "batch_size": 64, "lr": 0.05, "eval_every": 0, "seed": 0,
           "balance_method": "cutmix", "balance_params": {"lam": 0.6}, "train_set_run": bal.id}
    job = m.wait(m.submit(CLS_KIND, cfg).id, 240)
    assert job.state == "done", (job.error, job.traceback)
    res = json.loads((job.run.path / "results.json").read_text())
    assert res["train_images"] == len(s) and 0.0 <= res["accuracy"] <= 1.0
    assert job.result["accuracy"] == res["accuracy"] and Run(job.run.path).status["state"] == "done"


def test_real_cfg_training_then_guidance_sweep(make_manager):
    import numpy as np

    from core.jobs.runners import CFG_KIND, DEFAULT_RUNNERS, SWEEP

    m = make_manager(DEFAULT_RUNNERS)
    cfg = {"data": _digits(), "preset": "tiny", "steps": 3, "batch_size": 16, "preview_every": 0, "preview_steps": 2, "preview_per_class": 2,
           "checkpoint_every": 0, "log_every": 1}
    job = m.wait(m.submit(CFG_KIND, cfg).id, 300)
    assert job.state == "done", (job.error, job.traceback)
    assert (job.run.path / "checkpoints" / "latest").is_dir() and job.step == 3 and job.latest_preview is not None
    sweep = m.wait(m.submit("guidance", {"data": _digits(), "cfg_run": job.id, "class_idx": 0, "ws": [0.0, 7.5], "seeds": [0, 1],
                                         "sampler": "ddim", "steps": 2, "measure_n": 0}).id, 300)
    assert sweep.state == "done", (sweep.error, sweep.traceback)
    grid = np.load(sweep.run.path / SWEEP)
    assert grid.shape == (2, 2, 1, 16, 16) and grid.dtype == np.uint8
    assert not np.array_equal(grid[0], grid[1])  # w changes the images from the same seeds


# ------------------------------------------------------------------------ interactive lane
def test_interactive_job_does_not_wait_behind_training_and_training_pauses(make_manager):
    """A 'training' of 200 x 20 ms steps is running; a preview submitted meanwhile runs at once
    in the interactive lane, and the training makes no step while the preview runs."""
    from core import jobs as jobs_mod

    steps_during_preview = []

    def training(ctx):
        for i in range(200):
            if ctx.should_stop():
                return None
            time.sleep(0.02)
            ctx.progress(i + 1, 200)

    def preview(ctx):
        t = m.get(ctx.config["train_id"])
        s0 = t.step
        time.sleep(0.3)
        steps_during_preview.append(t.step - s0)
        return {"ok": True}

    m = make_manager({"train": training, "preview": preview})
    jobs_mod.register_interactive("preview", lambda c: True)
    try:
        long = m.submit("train", {})
        deadline = time.time() + 10
        while m.get(long.id).step < 5 and time.time() < deadline:
            time.sleep(0.01)
        t0 = time.time()
        p = m.submit("preview", {"train_id": long.id})
        assert p.lane == "interactive" and long.lane == "train"
        m.wait(p.id, 5)
        assert time.time() - t0 < 1.5  # not the ~3.9 s the training has left
        assert steps_during_preview == [0] or steps_during_preview[0] <= 1  # at most the step in flight
        assert m.get(long.id).state == "running"
        m.wait(long.id, 20)
        assert m.get(long.id).state == "done" and m.get(long.id).step == 200
    finally:
        jobs_mod.INTERACTIVE.pop("preview", None)


def test_lane_predicates_of_the_real_kinds():
    from core.jobs import runners as jr
    from core.jobs import lane_for

    assert lane_for("generate", {"method": "mixup", "classes": list(range(10)), "count": 256}) == "interactive"
    assert lane_for("generate", {"method": "cfg", "classes": [0], "count": 8}) == "interactive"
    assert lane_for("generate", {"method": "cfg", "classes": list(range(10)), "count": 8}) == "train"  # 80 > 64 images
    assert lane_for("guidance", {"ws": [0, 2], "seeds": [0, 1, 2], "measure_n": 0}) == "interactive"
    assert lane_for("guidance", {"ws": [0, 1, 2, 4, 7.5], "seeds": list(range(6)), "measure_n": 32}) == "train"  # 160 > 128
    assert lane_for("cfg", {"steps": 1}) == "train" and lane_for("balance", {"method": "mixup"}) == "train"
    assert jr.PREVIEW_MAX == 64


def test_queued_count_excludes_cancelled_jobs(make_manager):
    gate = threading.Event()
    m = make_manager({"slow": lambda ctx: gate.wait(10)})
    first = m.submit("slow", {"i": 0})
    queued = [m.submit("slow", {"i": i}) for i in range(1, 4)]
    for j in queued:
        m.cancel(j.id)
    last = m.submit("slow", {"i": 9})
    assert last.message.endswith("behind 1 job(s)"), last.message  # only the running one, not the 3 cancelled
    gate.set()
    m.wait(last.id, 10)
    assert first.state == "done"


def test_eta_uses_the_recent_step_time_not_the_stalls():
    from core.jobs import Job

    job = Job(run=Run("/nonexistent"), kind="x", device="cpu", state="running", total=100)
    t = 1000.0
    for step in range(1, 21):
        t += 0.5 if step != 10 else 60.0  # one 60 s stall (a preview being sampled) at step 10
        job.note_progress(step, t)
    job.step = 20
    assert job.eta_s == pytest.approx(80 * 0.5)  # the median step time, not (elapsed / steps)


EXITING_WITH_A_RUNNING_JOB = """
import sys, time, torch
from core.jobs import JobManager

def busy(ctx):
    a, n = torch.randn(256, 256), 0
    while not ctx.should_stop():
        a, n = torch.tanh(a @ a.T / 256), n + 1
    return {"steps": n}

m = JobManager(root=sys.argv[1], devices=["cpu"], runners={"busy": busy})
job = m.submit("busy", {})
while m.get(job.id).state != "running":
    time.sleep(0.01)
time.sleep(0.3)  # the worker is inside torch ops when the script ends, with no shutdown()
"""


def test_a_process_that_exits_with_a_running_job_stops_it_instead_of_aborting(tmp_path):
    """Without the exit hook, finalization kills the daemon worker inside a torch op: abort, exit 134."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-c", EXITING_WITH_A_RUNNING_JOB, str(tmp_path / "runs")], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = list_runs(tmp_path / "runs")
    assert run.status["state"] == "cancelled" and run.status["result"]["steps"] > 0
