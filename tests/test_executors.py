"""Local multi-lane and Ray executors on fake cells (tests/fake_cells.py): parallelism, where cells ran,
dependencies, failure/unavailable/crash/cancel semantics identical to the SerialExecutor. No study code."""

import json
import os
import sys

import pytest

from core.callbacks import Callbacks
from core.study.graph import CANCELLED, FAILED, OK, UNAVAILABLE, Cell, CellTask, SerialExecutor, summarize
from core.errors import ConfigError
from core.study.executors import LocalExecutor, accelerate_launch_command, cpu_lanes, parse_devices

TASK = "tests.fake_cells:record"


def graph():
    return [
        Cell("a", "classifier"),
        Cell("b", "classifier"),
        Cell("c", "classifier", deps=("a",)),
        Cell("bad", "fill"),
        Cell("after_bad", "classifier", deps=("bad",)),
        Cell("sd", "fill"),
        Cell("after_sd", "classifier", deps=("sd",)),
    ]


def payload(tmp_path, **kw):
    return {"dir": str(tmp_path), "fail": ["bad"], "unavailable": ["sd"], **kw}


def states(outcomes):
    """state and first line of the error per cell (tracebacks and timings differ between processes)."""
    return {k: (o.state, (o.error or "").split("\n")[0]) for k, o in outcomes.items()}


def rec(tmp_path, cid):
    return json.loads((tmp_path / f"{cid}.json").read_text())


def test_two_cpu_lanes_run_cells_at_once_respecting_dependencies(tmp_path):
    events, metrics, progress = [], [], []
    cb = Callbacks(on_metrics=metrics.append, on_progress=lambda d, t, m="": progress.append((d, t, m)))
    ex = LocalExecutor(cpu_lanes(2, threads=1))
    out = ex.run(graph(), CellTask(TASK, payload(tmp_path, meet=["a", "b"], threads=True)), cb,
                 on_event=lambda cid, ev, dev, msg: events.append((cid, ev, dev)))

    assert {k: o.state for k, o in out.items()} == {"a": OK, "b": OK, "c": OK, "bad": FAILED, "after_bad": FAILED,
                                                     "sd": UNAVAILABLE, "after_sd": UNAVAILABLE}
    a, b, c = rec(tmp_path, "a"), rec(tmp_path, "b"), rec(tmp_path, "c")
    # a and b met (each waited for the other to start), in two different worker processes (not this one)
    assert a["start"] < b["end"] and b["start"] < a["end"]
    assert len({a["pid"], b["pid"], os.getpid()}) == 3
    assert c["start"] >= a["end"]  # c waited for its dependency
    # each lane's worker was pinned to one torch thread and the cell was given "cpu"
    assert a["torch_threads"] == b["torch_threads"] == 1 and a["omp"] == "1" and a["device"] == "cpu"
    # the blocked cells never ran, and say why
    assert not (tmp_path / "after_bad.json").exists() and not (tmp_path / "after_sd.json").exists()
    assert "boom in bad" in out["bad"].error and "bad failed" in out["after_bad"].error
    assert "needs weights" in out["sd"].error and out["after_sd"].state == UNAVAILABLE
    # which cell ran where: a start event per run cell naming its lane, outcomes carry the lane too
    starts = {cid: dev for cid, ev, dev in events if ev == "start"}
    assert set(starts) == {"a", "b", "c", "bad", "sd"}
    assert {starts["a"], starts["b"]} == {"cpu:0", "cpu:1"}
    assert out["a"].device == starts["a"] and out["c"].device in ("cpu:0", "cpu:1")
    assert [e for e in events if e[0] == "after_bad"] == [("after_bad", FAILED, "")]
    # the workers' metrics reached this process, tagged with their cell; progress ends at n/n
    assert {m["cell"] for m in metrics} == {"a", "b", "c"}
    assert progress[-1][:2] == (7, 7)


def test_same_outcomes_as_the_serial_executor(tmp_path):
    task = CellTask(TASK, payload(tmp_path))
    serial = SerialExecutor().run(graph(), task)
    local = LocalExecutor(cpu_lanes(2, threads=1)).run(graph(), task)
    assert states(serial) == states(local)


def test_a_worker_that_dies_fails_its_cell_and_the_lane_goes_on(tmp_path):
    cells = [Cell("crash", "fill"), Cell("dep", "classifier", deps=("crash",)), Cell("x", "classifier"),
             Cell("y", "classifier", deps=("x",))]
    out = LocalExecutor(cpu_lanes(1, threads=1)).run(cells, CellTask(TASK, payload(tmp_path, crash=["crash"])))
    assert out["crash"].state == FAILED and "died (exit code 3)" in out["crash"].error
    assert out["dep"].state == FAILED and "crash failed" in out["dep"].error
    assert out["x"].state == OK and out["y"].state == OK  # a fresh worker took the lane over
    assert rec(tmp_path, "x")["pid"] == rec(tmp_path, "y")["pid"]


def test_cancel_stops_running_cells_and_never_starts_the_rest(tmp_path):
    started = []
    cells = [Cell("long1", "classifier"), Cell("long2", "classifier"), Cell("later", "classifier", deps=("long1",)),
             Cell("later2", "classifier")]
    # both lanes sit in a cell that polls should_stop; the study is cancelled once both have started
    cb = Callbacks(should_stop=lambda: len(started) >= 2)
    out = LocalExecutor(cpu_lanes(2, threads=1)).run(
        cells, CellTask(TASK, payload(tmp_path, until_stop=["long1", "long2"])), cb,
        on_event=lambda cid, ev, dev, msg: ev == "start" and started.append(cid))
    assert sorted(started) == ["long1", "long2"]
    assert summarize(out) == {OK: 0, FAILED: 0, UNAVAILABLE: 0, CANCELLED: 4}
    assert out["later2"].error == "cancelled before it started"


def test_a_wide_cell_takes_every_lane_and_nothing_runs_beside_it(tmp_path):
    cells = [Cell("x", "classifier"), Cell("train", "cfg-train"), Cell("fill", "fill", deps=("train",)),
             Cell("y", "classifier")]
    events = []
    out = LocalExecutor(cpu_lanes(2, threads=1), wide={"cfg-train": 0}).run(
        cells, CellTask(TASK, payload(tmp_path, sleep={"x": 1.0, "train": 1.0, "y": 1.0})),
        on_event=lambda cid, ev, dev, msg: events.append((cid, ev, dev)))
    assert all(o.state == OK for o in out.values())
    t = rec(tmp_path, "train")
    assert t["device"] == "cpu:0,cpu:1" and out["train"].device == "cpu:0,cpu:1"
    for other in ("x", "y", "fill"):
        r = rec(tmp_path, other)
        assert r["end"] <= t["start"] or r["start"] >= t["end"], f"{other} overlapped the wide cell"


def test_device_specs():
    lanes = parse_devices("cpu,cpu")
    assert [l.label for l in lanes] == ["cpu:0", "cpu:1"] and [l.device for l in lanes] == ["cpu", "cpu"]
    assert lanes[0].threads == max(1, (os.cpu_count() or 1) // 2)
    with pytest.raises(ConfigError, match="Unknown device 'tpu'"):
        parse_devices("cpu,tpu")
    with pytest.raises(ConfigError, match="names no device"):
        parse_devices(" , ")
    with pytest.raises(ConfigError, match="positive number of lanes"):
        cpu_lanes(0)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"cuda:0 but this machine has 0 GPU"):
            parse_devices("cuda:0")


def test_accelerate_launch_command_for_a_wide_cell():
    argv, env = accelerate_launch_command("cuda:2,cuda:3", ["core", "train-cfg", "--out", "x"])
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert argv[argv.index("--num_processes") + 1] == "2" and "--multi_gpu" in argv
    assert argv[-5:] == ["-m", "core", "train-cfg", "--out", "x"]
    argv, env = accelerate_launch_command("cpu:0,cpu:1", ["core", "train-cfg"])
    assert argv[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert "CUDA_VISIBLE_DEVICES" not in env


def test_ray_missing_is_a_clear_error(monkeypatch):
    from core.study.executors import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match="pip install ray"):
        RayExecutor()


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from core.study.executors import RayExecutor

    ex = RayExecutor(num_cpus=2, threads=1)
    yield ex
    ex.shutdown()
    assert not ray.is_initialized()


@pytest.mark.timeout(300)
def test_ray_executor_matches_the_serial_executor(tmp_path, ray_local):
    task = CellTask(TASK, payload(tmp_path, meet=["a", "b"], threads=True))
    events = []
    out = ray_local.run(graph(), task, on_event=lambda cid, ev, dev, msg: events.append((cid, ev, dev)))
    (tmp_path / "serial").mkdir()
    serial = SerialExecutor().run(graph(), CellTask(TASK, payload(tmp_path / "serial")))
    assert states(out) == states(serial)
    a, b = rec(tmp_path, "a"), rec(tmp_path, "b")
    assert a["start"] < b["end"] and b["start"] < a["end"]  # 2 CPUs: they met, so both ran at once
    assert a["torch_threads"] == 1 and a["device"] == "cpu"
    assert a["cwd"] == os.getcwd()  # relative paths in a payload mean the same in a Ray task
    starts = {cid: dev for cid, ev, dev in events if ev == "start"}
    assert set(starts) == {"a", "b", "c", "bad", "sd"} and "cpu[pid" in starts["a"]
    assert out["a"].device == starts["a"]


@pytest.mark.timeout(300)
def test_ray_retries_a_cell_whose_worker_died(tmp_path, ray_local):
    # "x" kills its worker on the first attempt (leaving x.crashed); Ray runs it again and it succeeds.
    # "y" waits on x through Ray's object refs; "crash" dies on every attempt: failed after the retries.
    cells = [Cell("x", "classifier"), Cell("y", "classifier", deps=("x",)), Cell("crash", "fill"),
             Cell("after_crash", "classifier", deps=("crash",))]
    events = []
    out = ray_local.run(cells, CellTask(TASK, payload(tmp_path, crash_once=["x"], crash=["crash"])),
                        on_event=lambda cid, ev, dev, msg: events.append((cid, ev)))
    assert (tmp_path / "x.crashed").exists() and out["x"].state == OK and rec(tmp_path, "x")["id"] == "x"
    assert out["y"].state == OK and rec(tmp_path, "y")["start"] >= rec(tmp_path, "x")["end"]
    assert events.count(("x", "start")) == 2  # the killed attempt and the retry
    assert out["crash"].state == FAILED and "WorkerCrashedError" in out["crash"].error
    assert out["after_crash"].state == FAILED and out["after_crash"].error.startswith("crash failed")
    assert events.count(("crash", "start")) == 3  # 1 + max_retries (2)
    assert ("after_crash", "start") not in events


def test_executor_for_the_cli_options(monkeypatch):
    from core.study.executors import executor_for

    assert executor_for() is None  # no option: the study's in-process serial executor
    ex = executor_for(lanes=2)
    assert isinstance(ex, LocalExecutor) and ex.device == "cpu:0,cpu:1"
    assert executor_for(devices="cpu,cpu").device == "cpu:0,cpu:1"
    with pytest.raises(ConfigError, match="--devices and --lanes were both given"):
        executor_for(devices="cpu", lanes=2)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match="--ray needs the optional package 'ray'"):
        executor_for(ray="local")


@pytest.mark.timeout(300)
def test_a_wide_cell_launches_one_process_per_lane(tmp_path):
    out = LocalExecutor(cpu_lanes(2, threads=1), wide={"cfg-train": 0}).run(
        [Cell("train", "cfg-train")], CellTask("tests.fake_cells:wide_ddp", {"dir": str(tmp_path)}))
    assert out["train"].state == OK, out["train"].error
    assert out["train"].result["ranks"] == [0, 1]
    assert [json.loads((tmp_path / f"rank{r}.json").read_text())["sum"] for r in (0, 1)] == [3.0, 3.0]  # 1 + 2


def test_workers_do_not_rerun_the_parents_main_script(tmp_path, monkeypatch):
    # In the Streamlit server (and after AppTest) __main__ is the page script; spawn would re-run it in every worker.
    import types

    script = tmp_path / "page_script.py"
    script.write_text("raise SystemExit('the page script ran in a worker')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    out = LocalExecutor(cpu_lanes(1, threads=1)).run([Cell("a", "classifier")], CellTask(TASK, payload(tmp_path)))
    assert out["a"].state == OK, out["a"].error
    assert sys.modules["__main__"] is fake_main  # restored after the start
