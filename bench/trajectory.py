"""The denoising view's trajectory job while a CFG model trains on the same CPU: how long the
user waits, and how long the training pauses for it.

    flock /tmp/bench.lock .venv/bin/python bench/trajectory.py

Writes bench/results/trajectory.json through bench/record.py (prose: bench/templates/trajectory.md).

On the embedded digits set (16x16 grey, tiny preset) with a temp runs folder, like
bench/app_jobs.py's interactive-lane case: a small CFG model is trained first (30 steps) to
sample from; then a long CFG training starts, and once it runs, trajectory jobs (25 DPM-Solver
steps, w = 0, 2, 7.5: the denoising view's default) are submitted one after the other. For each:
submit -> done (target < 10 s), and the training's pause, read from a 2 ms poll of its step
counter: the longest time the step did not move while the job was queued or running, against the
training's median step time measured before.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")
os.environ["IMBALANCE_LAB_RUNS"] = tempfile.mkdtemp(prefix="bench-traj-runs-")

WS, STEPS, REPEATS = [0.0, 2.0, 7.5], 25, 3


class StepWatch:
    """(time, step) of a job each time its step counter moves, from a 2 ms poll in a thread."""

    def __init__(self, job):
        self.job, self.events, self._stop = job, [], threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            s = self.job.step
            if s != last:
                self.events.append((time.perf_counter(), s))
                last = s
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._t.join()

    def gaps(self, t0: float, t1: float) -> list[float]:
        """Times between step moves, for moves after t0 up to the first move after t1."""
        ts = [t for t, _ in self.events]
        out = []
        for a, b in zip(ts, ts[1:]):
            if b > t0 and a < t1:
                out.append(b - a)
        return out


def main() -> None:
    import core.jobs.runners  # noqa: F401  registers the real runners and the interactive lane's limits
    from core.data.loading import DataConfig
    from core.jobs import JobManager
    from core.train.cfg_unet import CFGTrainConfig

    data = DataConfig(dataset="digits", profile="paper").to_dict()
    m = JobManager(root=tempfile.mkdtemp(prefix="bench-traj-"), devices=["cpu"])
    out: dict = {"ws": WS, "steps": STEPS, "sampler": "dpm", "dataset": "digits", "preset": "tiny"}
    try:
        model = m.submit("cfg", CFGTrainConfig.from_dict({"data": data, "steps": 30, "batch_size": 32, "preview_every": 0,
                                                          "preview_steps": 2, "checkpoint_every": 0}).to_dict(), name="model")
        m.wait(model.id, 600)
        long = m.submit("cfg", CFGTrainConfig.from_dict({"data": data, "steps": 100_000, "batch_size": 64, "preview_every": 0,
                                                         "checkpoint_every": 0, "log_every": 10}).to_dict(), name="long")
        job = m.get(long.id)
        while job.state != "running" or job.step < 20:
            if not job.active:
                raise RuntimeError(f"training ended early: {job.summary()}")
            time.sleep(0.05)
        watch = StepWatch(job)
        time.sleep(3.0)  # the training's own step time, undisturbed
        t_base = time.perf_counter()
        base = watch.gaps(t_base - 3.0, t_base)
        out["training_step_s_median"] = statistics.median(base)
        rows = []
        for i in range(REPEATS):
            cfg = {"data": data, "cfg_run": model.id, "class_idx": 0, "ws": WS, "seed": i, "sampler": "dpm", "steps": STEPS}
            t0 = time.perf_counter()
            j = m.submit("trajectory", cfg, name=f"traj{i}")
            m.wait(j.id, 600)
            t1 = time.perf_counter()
            time.sleep(1.0)  # let the training take its next steps
            gaps = watch.gaps(t0, t1)
            done = m.get(j.id)
            rows.append({"submit_to_done_s": t1 - t0, "state": done.state, "lane": done.lane,
                         "training_paused_s": max(gaps) if gaps else None,
                         "run_s": (done.finished - done.started) if done.started and done.finished else None})
            print(rows[-1], flush=True)
        watch.stop()
        out["runs"] = rows
        out["submit_to_done_s_median"] = statistics.median(r["submit_to_done_s"] for r in rows)
        out["submit_to_done_s_max"] = max(r["submit_to_done_s"] for r in rows)
        out["training_paused_s_median"] = statistics.median(r["training_paused_s"] for r in rows)
        out["training_paused_s_max"] = max(r["training_paused_s"] for r in rows)
        out["training_still_running"] = m.get(long.id).state == "running"
        out["training_step_when_done"] = m.get(long.id).step
        m.cancel(long.id)
        m.wait(long.id, 120)
    finally:
        m.shutdown()
    lines = ["| while a CFG model trains on the CPU | median | max | target |", "|---|---|---|---|",
             f"| trajectory job, {STEPS} DPM-Solver++ steps, w = {', '.join(f'{w:g}' for w in WS)}: submit → saved | "
             f"**{out['submit_to_done_s_median']:.2f} s** | {out['submit_to_done_s_max']:.2f} s | < 10 s |",
             f"| the training's longest pause in that time | **{out['training_paused_s_median']:.2f} s** | {out['training_paused_s_max']:.2f} s | — |",
             f"| the training's step time, undisturbed (median) | {out['training_step_s_median'] * 1e3:.0f} ms | | |",
             "", f"{REPEATS} jobs, one after the other (seeds 0..{REPEATS - 1}), each in the `{rows[0]['lane']}` lane; "
             f"the training was still running afterwards: {out['training_still_running']} (step {out['training_step_when_done']})."]
    md = "\n".join(lines)
    print(md)
    from bench.record import write_result

    write_result("trajectory", out, markdown=md)


if __name__ == "__main__":
    main()
