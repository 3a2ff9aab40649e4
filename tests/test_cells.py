"""The cell contract and the serial executor: order, dependency propagation, failure capture, cancel."""

from core.callbacks import Callbacks
from core.study.graph import CANCELLED, FAILED, OK, UNAVAILABLE, Cell, CellTask, SerialExecutor, summarize, topological
from core.errors import Unavailable

CALLS: list[str] = []


def fake_cell(payload, cell, device, callbacks):
    CALLS.append(cell.id)
    if cell.id in payload.get("fail", []):
        raise RuntimeError(f"boom in {cell.id}")
    if cell.id in payload.get("unavailable", []):
        raise Unavailable("no weights here", "put them in models/")
    return {"id": cell.id, "device": device}


TASK = "tests.test_cells:fake_cell"


def graph():
    return [
        Cell("clf_a", "classifier", deps=("fill_a",)),
        Cell("fill_a", "fill", deps=("train",)),
        Cell("train", "cfg-train"),
        Cell("clf_b", "classifier"),
    ]


def test_topological_puts_dependencies_first():
    ids = [c.id for c in topological(graph())]
    assert ids.index("train") < ids.index("fill_a") < ids.index("clf_a")
    assert sorted(ids) == ["clf_a", "clf_b", "fill_a", "train"]


def test_failed_dependency_fails_dependents_without_running_them():
    CALLS.clear()
    out = SerialExecutor().run(graph(), CellTask(TASK, {"fail": ["train"]}))
    assert out["train"].state == FAILED and "boom in train" in out["train"].error
    assert out["fill_a"].state == FAILED and out["clf_a"].state == FAILED
    assert "train failed" in out["fill_a"].error
    assert out["clf_b"].state == OK and out["clf_b"].result == {"id": "clf_b", "device": "cpu"}
    assert sorted(CALLS) == ["clf_b", "train"]  # the blocked cells never ran
    assert summarize(out) == {OK: 1, FAILED: 3, UNAVAILABLE: 0, CANCELLED: 0}


def test_unavailable_propagates_as_unavailable():
    out = SerialExecutor().run(graph(), CellTask(TASK, {"unavailable": ["fill_a"]}))
    assert [out[k].state for k in ("train", "fill_a", "clf_a", "clf_b")] == [OK, UNAVAILABLE, UNAVAILABLE, OK]
    assert "no weights here" in out["fill_a"].error


def test_cancel_marks_the_rest_cancelled():
    CALLS.clear()
    events = []
    out = SerialExecutor().run(graph(), CellTask(TASK), Callbacks(should_stop=lambda: len(CALLS) >= 2),
                               on_event=lambda cid, ev, dev, msg: events.append((cid, ev)))
    assert len(CALLS) == 2
    assert summarize(out)[OK] == 2 and summarize(out)[CANCELLED] == 2
    assert events.count(("train", "start")) == 1 and ("train", OK) in events
