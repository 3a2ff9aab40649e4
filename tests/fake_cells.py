"""Cell functions for the executor tests: they record where and when they ran, and nothing else.

payload: {"dir": folder for the records, "sleep": {id: seconds}, "fail": [ids], "unavailable": [ids],
          "crash": [ids] (the worker process exits hard), "crash_once": [ids] (exits hard unless <dir>/<id>.crashed
          exists, which it leaves behind: a retried cell succeeds), "until_stop": [ids] (poll should_stop),
          "threads": true (report torch's thread count),
          "meet": [ids] (each waits, up to 60 s, until every one of them has started: proof they overlap)}
"""

import json
import os
import time
from pathlib import Path

from core.errors import Cancelled, Unavailable


def record(payload, cell, device, callbacks):
    start = time.time()
    if cell.id in payload.get("crash", []):
        os._exit(3)
    if cell.id in payload.get("crash_once", []) and not Path(payload["dir"], f"{cell.id}.crashed").exists():
        Path(payload["dir"], f"{cell.id}.crashed").touch()
        os._exit(3)
    if cell.id in payload.get("unavailable", []):
        raise Unavailable("needs weights this machine lacks", "put them in models/")
    meet = payload.get("meet", [])
    if cell.id in meet:
        Path(payload["dir"], f"{cell.id}.arrived").touch()
        t_end = time.time() + 60
        while not all(Path(payload["dir"], f"{m}.arrived").exists() for m in meet):
            if time.time() > t_end:
                raise RuntimeError(f"{cell.id} waited 60 s for {meet}: they did not run at the same time")
            time.sleep(0.02)
    deadline = time.time() + payload.get("sleep", {}).get(cell.id, 0.0)
    while time.time() < deadline:
        if cell.id in payload.get("until_stop", []) and callbacks.stop_requested():
            raise Cancelled()
        callbacks.progress(0, 1, "working")
        time.sleep(0.05)
    if cell.id in payload.get("until_stop", []):
        while not callbacks.stop_requested():
            time.sleep(0.05)
        raise Cancelled()
    if cell.id in payload.get("fail", []):
        raise RuntimeError(f"boom in {cell.id}")
    rec = {"id": cell.id, "pid": os.getpid(), "device": device, "start": start, "end": time.time(),
           "omp": os.environ.get("OMP_NUM_THREADS"), "cwd": os.getcwd()}
    if payload.get("threads"):
        import torch

        rec["torch_threads"] = torch.get_num_threads()
    Path(payload["dir"], f"{cell.id}.json").write_text(json.dumps(rec))
    callbacks.metrics({"step": 1, "loss": 0.5})
    return rec


def wide_ddp(payload, cell, device, callbacks):
    """A wide cell: one process per lane it was given, started the way a CFG training would be."""
    import subprocess

    from core.study.executors import accelerate_launch_command

    argv, env = accelerate_launch_command(device, ["tests.ddp_probe", payload["dir"]])
    r = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=240)
    if r.returncode:
        raise RuntimeError(f"launch failed ({r.returncode}): {r.stderr[-2000:]}")
    return {"device": device, "ranks": sorted(json.loads(p.read_text())["rank"] for p in Path(payload["dir"]).glob("rank*.json"))}
