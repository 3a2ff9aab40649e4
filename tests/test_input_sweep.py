"""Bad input, swept (issue 19 §7): random URL parameters and random values in every form's
fields never show an exception box, never hang a script run, and never allocate past a budget.

Hypothesis draws the inputs (random and unicode text, huge and negative numbers, NaN and the
infinities, paths); Streamlit's AppTest drives the pages as tests/test_app_pages.py does.
Values are sent as a browser could send them: any string for a text field or a URL parameter,
any int64 for an integer field, any double for a float field (the client is not trusted to
respect a field's min/max). Job runners are replaced by one that records the config and fails
at once, so a submitted form starts nothing heavy.

* nothing hangs: every script run has RUN_TIMEOUT seconds (AppTest raises past it);
* nothing allocated beyond the budget: the process's address space may grow by at most
  MEMORY_BUDGET during the sweep (RLIMIT_AS), so an allocation past it fails (and shows up
  as an exception box or an error) instead of swapping the machine; its peak RSS may grow by
  no more than that either.

In ``make test`` the sweep is small and fixed (derandomized, SWEEP_EXAMPLES examples per test,
< 60 s in all). ``bench/input_sweep.py`` runs the same tests with many more random examples and
records how many inputs it tried (INPUT_SWEEP_EXAMPLES, INPUT_SWEEP_LOG, INPUT_SWEEP_COLLECT).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as hs
from streamlit.testing.v1 import AppTest

from core import jobs
from core.jobs.kinds import RunnerTable
from core.data.loading import DATASETS
from core.errors import LabError

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = ["app_pages/dataset.py", "app_pages/train.py", "app_pages/generate.py", "app_pages/guidance.py", "app_pages/results.py"]
RUN_TIMEOUT = 30  # seconds a script run may take: past it AppTest raises (a hang)
MEMORY_BUDGET = 3 << 30  # bytes the sweep may add to the process (address space and peak RSS)
SWEEP_EXAMPLES = int(os.environ.get("INPUT_SWEEP_EXAMPLES", "20"))  # per test: both tests together < 60 s on 2 cores
LOG = os.environ.get("INPUT_SWEEP_LOG")  # bench: one JSON line per input tried
COLLECT = os.environ.get("INPUT_SWEEP_COLLECT") == "1"  # bench: log a failing input and go on instead of stopping
SETTINGS = settings(max_examples=SWEEP_EXAMPLES, deadline=None, database=None, derandomize=not LOG,
                    phases=[Phase.explicit, Phase.generate],  # no shrinking: it would rerun pages past the 60 s cap
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])

INT64 = hs.one_of(hs.integers(-(2**63), 2**63 - 1), hs.sampled_from([0, -1, 1, 8192, 1024, 2**31, -(2**31), 2**63 - 1]))
DOUBLES = hs.one_of(hs.floats(allow_nan=True, allow_infinity=True), hs.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e-308]))
# Paths a user could type. Not "/" or "..": without data roots (issue 19 §1) the lab would walk the whole disk.
PATHS = ["/etc", "/nonexistent/folder", "~", "/dev/null", "/proc/self/environ", "./app.py", "data.zip", "C:\\Users\\x", "a" * 300,
         "../shared/data/cifar10", "/work/shared/data/cifar10", "\u202e/etc", "ｆｏｌｄｅｒ/数据"]
TEXT = hs.one_of(hs.text(max_size=40), hs.sampled_from(PATHS), INT64.map(str), DOUBLES.map(str),
                 hs.lists(INT64, max_size=12).map(lambda xs: ",".join(map(str, xs))))
URL_KEYS = ["profile", "ratio", "minority", "counts", "order", "seed", "size", "dir", "test", "subset", "testn", "judgen"]
URL_PARAMS = hs.fixed_dictionaries({"dataset": hs.one_of(hs.sampled_from(list(DATASETS)), hs.text(max_size=12))},
                                   optional={k: TEXT for k in URL_KEYS})


def _refuse(ctx):
    raise LabError("Not run: the input sweep only checks what the form submits.")


@pytest.fixture()
def sweep_env(tmp_path, monkeypatch):
    """A fresh runs folder and cache, instant failing runners, and the memory budget."""
    monkeypatch.setenv("IMBALANCE_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    # the app's own dataset budget (core/data/budget.py) below the sweep's address-space limit: a large
    # size must be refused by the app with its estimate, never reach an allocation the limit would fail
    monkeypatch.setenv("IMBALANCE_LAB_MEMORY_BUDGET_GB", str(MEMORY_BUDGET / 2**30 / 3))
    # data roots: the sweep's own folder only (a URL may name ../shared/data/cifar10: decoding 60,000 JPEGs is
    # work, not a hang, and the roots refusing it is what a class server does)
    (tmp_path / "data").mkdir(exist_ok=True)
    monkeypatch.setenv("IMBALANCE_LAB_DATA_ROOTS", str(tmp_path / "data"))
    import core.jobs.runners  # noqa: F401  registers the lab's job kinds

    for kind in RunnerTable().kinds():  # every registered kind (RUNNERS holds only the overrides)
        monkeypatch.setitem(jobs.RUNNERS, kind, _refuse)
    if not (tmp_path / "runs").exists():  # a finished CFG model, so the Guidance page shows its form (once per test)
        from tests.helpers import cfg_run

        cfg_run(tmp_path / "runs", "cfg-model", "done", 10, 10)
    _fresh.keep = {d.name for d in (tmp_path / "runs").iterdir()}
    with memory_limit():
        yield tmp_path


@contextlib.contextmanager
def memory_limit(budget: int = MEMORY_BUDGET):
    """The process's address space may grow by at most ``budget`` inside (RLIMIT_AS), and its peak RSS too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vsize = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = vsize + budget if hard == resource.RLIM_INFINITY else min(vsize + budget, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    assert grown <= budget, f"peak RSS grew by {grown / 2**20:.0f} MB during the sweep (budget {budget >> 20} MB)"


def _log(kind: str, inputs: dict, problem: str | None, seconds: float) -> None:
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps({"kind": kind, "inputs": inputs, "problem": problem, "seconds": round(seconds, 3)}, default=repr) + "\n")


def _fresh(root: Path) -> None:
    """Forget what earlier examples left (their runs, the saved workspace and forms): each example's
    pages, and so what it draws, must not depend on the examples before it."""
    import shutil

    for d in (root / "runs").iterdir():
        if d.name not in _fresh.keep:
            shutil.rmtree(d, ignore_errors=True)
    (root / "cache" / "workspace.json").unlink(missing_ok=True)


def _run(at: AppTest) -> str | None:
    """One script run: what went wrong (an exception box, a hang, an allocation past the budget), or None."""
    try:
        at.run()
    except RuntimeError as exc:  # AppTest: "AppTest script run timed out after 30(s)"
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    except MemoryError as exc:
        return f"MemoryError (past the {MEMORY_BUDGET >> 30} GiB budget): {exc}"
    if at.exception:
        return "exception box: " + " | ".join(str(e.value).splitlines()[0][:300] for e in at.exception)
    return None


def _report(kind: str, inputs: dict, problems: list[str], t0: float) -> None:
    """Log the input (bench) and fail on a problem (unless the bench collects them)."""
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps({"kind": kind, "inputs": inputs, "problems": problems, "seconds": round(time.time() - t0, 3)}, default=repr) + "\n")
    if problems and not COLLECT:
        pytest.fail(f"{kind} {inputs!r}: {problems}")


@SETTINGS
@given(params=URL_PARAMS, page=hs.sampled_from(PAGES))
def test_any_url_gives_a_page_never_an_exception_box(sweep_env, params, page):
    _fresh(sweep_env)
    t0 = time.time()
    at = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    problems = [p for p in [_run(at)] if p]
    if not problems and page != PAGES[0]:
        at.switch_page(page)
        problems += [p for p in [_run(at)] if p]
    _report("url", {"url": params, "page": page}, problems, t0)


# (page, the button that submits its form; None: its widgets apply as they change)
FORMS = [
    ("app_pages/dataset.py", None),
    ("app_pages/train.py", "Start CFG training"),
    ("app_pages/train.py", "Start classifier training"),
    ("app_pages/generate.py", "Generate preview"),
    ("app_pages/generate.py", "Balance the dataset with this generator"),
    ("app_pages/guidance.py", "Run the sweep"),
    ("app_pages/results.py", None),
]


def _pick_choices(at: AppTest, draw) -> dict:
    """Every select box, radio and checkbox on the page set to a drawn option (they show or hide fields)."""
    picked = {}
    for w in [w for w in [*at.selectbox, *at.radio] if not w.disabled]:  # a browser cannot change a disabled widget
        if w.options:
            i = draw(hs.integers(0, len(w.options) - 1))
            if hasattr(w, "select_index"):
                w.select_index(i)
            else:  # a radio: its options are the (string) values
                w.set_value(w.options[i])
            picked[w.label] = w.options[i]
    for w in [w for w in [*at.checkbox, *at.toggle] if not w.disabled]:
        v = draw(hs.booleans())
        w.set_value(v)
        picked[w.label] = v
    return picked


def _fill_fields(at: AppTest, draw) -> dict:
    """Every number and text field on the page, set to a drawn value; returns what was set."""
    values = {}
    for w in [w for w in at.number_input if not w.disabled]:
        is_int = isinstance(w.value, int) or (w.value is None and w.proto.data_type == w.proto.DataType.INT)
        v = draw(INT64 if is_int else DOUBLES)
        w.set_value(v)
        values[w.label] = v
    for w in [w for w in [*at.text_input, *at.text_area] if not w.disabled]:
        v = draw(TEXT)
        w.set_value(v)
        values[w.label] = v
    return values


@SETTINGS
@given(form=hs.sampled_from(FORMS), data=hs.data())
def test_any_form_values_give_a_page_never_an_exception_box(sweep_env, form, data):
    page, submit = form
    _fresh(sweep_env)
    t0 = time.time()
    at = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)
    inputs = {"page": page, "submit": submit}
    problems = [p for p in [_run(at)] if p]
    if not problems and page != PAGES[0]:
        at.switch_page(page)
        problems += [p for p in [_run(at)] if p]
    if not problems:
        inputs["choices"] = _pick_choices(at, data.draw)
        problems += [p for p in [_run(at)] if p]
    if not problems:
        inputs["fields"] = _fill_fields(at, data.draw)
        buttons = [b for b in at.button if b.label == submit and not b.disabled] if submit else []
        if buttons:
            buttons[0].click()
        inputs["submitted"] = bool(buttons)
        problems += [p for p in [_run(at)] if p]
    _report("form", inputs, problems, t0)
