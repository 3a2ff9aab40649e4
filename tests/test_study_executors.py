"""A small study run by the local multi-lane executor and by Ray gives the rows of the same study run
in-process with the same seeds; the study's status says which cell ran where.

Threads are pinned to 1 on every side (Ray gives each task one CPU and one thread), so the
numerics are the same: configs, steps, data subsets and metrics are compared exactly; the
tolerance stated for metrics (TOL) is there for BLAS paths that differ between processes, and is
one test image of the 360 in digits' test split."""

import json
import os

import pytest
import torch

from core.study.config import StudyConfig
from core.study.run import load_results, run_study
from core.study.executors import LocalExecutor, cpu_lanes

TOL = 1.0 / 360


def small_study() -> StudyConfig:
    # digits at their native 8×8 (as the quick preset): the 16×16 upscale quadruples every cell's work and
    # changes nothing compared here (cells, counts, steps, rows; the test split keeps its 360 images)
    return StudyConfig.from_dict({
        "name": "executors", "data": {"dataset": "digits", "image_size": 8, "profile": "paper"}, "real_fill": False,
        "methods": ["none", "oversample", "cfg"], "cfg_ws": [7.5], "classifiers": ["small"], "seeds": [0], "target": 40,
        "classifier": {"steps": 12, "batch_size": 32, "lr": 0.05, "warmup_steps": 2, "eval_every": 0},
        "cfg_train": {"preset": "tiny", "steps": 4, "batch_size": 16, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 0,
                      "preview_every": 0, "preview_per_class": 1, "preview_steps": 2},
        "cfg_sample": {"sampler": "dpm", "steps": 3}, "generation_metrics": False, "device": "cpu",
    })


EXACT = ("method", "classifier", "state", "steps", "images_seen", "train_size", "batch_size", "seeds", "n_seeds")
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "minority_f1")


def cell_results(root) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((root / "cells").glob("*/results.json"))}


def assert_same_study(a_root, b_root):
    a, b = load_results(a_root), load_results(b_root)
    assert a["state"] == b["state"] == "done" and a["cells"] == b["cells"]
    assert [{k: r.get(k) for k in EXACT} for r in a["rows"]] == [{k: r.get(k) for k in EXACT} for r in b["rows"]]
    for ra, rb in zip(a["rows"], b["rows"]):
        for m in METRICS:
            assert ra[m]["mean"] == pytest.approx(rb[m]["mean"], abs=TOL), (ra["method"], m)
    ca, cb = cell_results(a_root), cell_results(b_root)
    assert sorted(ca) == sorted(cb)
    for cid in ca:  # the data each cell trained on, and how long
        for k in ("train_counts", "train_size", "steps", "images_seen", "counts", "n_generated"):
            assert ca[cid].get(k) == cb[cid].get(k), (cid, k)


@pytest.fixture(scope="module")
def serial_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("serial") / "study"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_study(small_study(), root)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.mark.timeout(600)
def test_two_cpu_lanes_give_the_serial_rows_and_say_where_cells_ran(serial_study, tmp_path):
    root = tmp_path / "study"
    run_study(small_study(), root, executor=LocalExecutor(cpu_lanes(2, threads=1)))
    assert_same_study(serial_study, root)
    cells = json.loads((root / "status.json").read_text())["cells"]
    assert {c["state"] for c in cells.values()} == {"ok"}
    assert {c["device"] for c in cells.values()} <= {"cpu:0", "cpu:1"} and len({c["device"] for c in cells.values()}) == 2


@pytest.mark.timeout(600)
def test_ray_gives_the_serial_rows(serial_study, tmp_path):
    ray = pytest.importorskip("ray")
    from core.study.executors import RayExecutor

    root = tmp_path / "study"
    ex = RayExecutor(num_cpus=2, threads=1)
    try:
        run_study(small_study(), root, executor=ex)
    finally:
        ex.shutdown()
    assert not ray.is_initialized()
    assert_same_study(serial_study, root)
    cells = json.loads((root / "status.json").read_text())["cells"]
    assert all("/cpu[pid " in c["device"] for c in cells.values()), cells  # host/cpu[pid N]: a Ray worker
    assert all(int(c["device"].split("pid ")[1].rstrip("]")) != os.getpid() for c in cells.values())
