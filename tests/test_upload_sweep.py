"""Hostile uploads, swept (issue 28): study files on the Study page and dataset zips on the Dataset page.

Each case of tests/hostile_inputs.py goes through the page a student would use, in AppTest, signed in
as one person on a shared server (tokens file, data roots, small disk budgets), and for each:

* no exception box and no uncaught exception (AppTest raises on a hang past RUN_TIMEOUT);
* what must be refused is refused (a study: no job started; a zip: an error, no dataset chosen),
  and what must be taken is (a valid study; a ``device`` or ``cpu_lanes`` is ignored with a note
  and the started study's config holds neither);
* no file written outside its folder: the whole test folder (runs, cache, data roots, the working
  directory, HOME and TMPDIR all inside it) is listed before and after; a refusal changes nothing
  in it, an accepted study adds only its run folder, an accepted zip only the person's upload
  folder and the decoded-dataset cache; no symbolic link appears; no escaping entry's target exists;
* no allocation past the budget: the process's address space may grow by at most MEMORY_BUDGET
  (RLIMIT_AS; bench/input_sweep.py also runs this file in a subprocess under ``ulimit -v``).

In CI a fixed subset runs (every STRIDE-th case plus the ones that must be taken, < 60 s in all);
``INPUT_SWEEP_ALL=1`` (bench/input_sweep.py) runs every case and logs each to INPUT_SWEEP_LOG.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.serving import identity, server as serving
from core import jobs
from core.jobs.kinds import RunnerTable
from core.data import budget as data_budget
from core.data import disk
from tests.hostile_inputs import ESCAPE, Case, archive_cases, study_cases
from tests.test_input_sweep import APP, COLLECT, LOG, MEMORY_BUDGET, RUN_TIMEOUT, _refuse, memory_limit

ALL = os.environ.get("INPUT_SWEEP_ALL") == "1"
STRIDE = {"study": 40, "archive": 8}  # CI: every STRIDE-th case (and every one that must be taken)
MB = 1024**2
USER = "alice"


def subset(cases: list[Case], kind: str) -> list[Case]:
    return cases if ALL else [c for i, c in enumerate(cases) if i % STRIDE[kind] == 0 or c.refuse is False]


@pytest.fixture()
def upload_env(tmp_path, monkeypatch):
    """A shared server with one signed-in person: every folder it may write inside tmp_path."""
    for d in ("runs", "cache", "data", "cwd", "home", "tmp"):
        (tmp_path / d).mkdir()
    users = tmp_path / "users.toml"
    users.write_text(f'[{USER}]\ntoken = "{USER}-token-0123"\n')
    env = {"IMBALANCE_LAB_RUNS": "runs", "IMBALANCE_LAB_CACHE": "cache", serving.ROOTS_VAR: "data", "HOME": "home", "TMPDIR": "tmp"}
    for var, d in env.items():
        monkeypatch.setenv(var, str(tmp_path / d))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv(identity.USERS_VAR, str(users))
    monkeypatch.setenv(serving.SHARED_VAR, "1")
    monkeypatch.setenv(disk.USER_VAR, str(16 * MB / disk.GB))  # a zero-filled bomb of ~20 MB passes it
    monkeypatch.setenv(disk.SERVER_VAR, str(64 * MB / disk.GB))
    monkeypatch.setenv(data_budget.BUDGET_VAR, str(MEMORY_BUDGET / 2**30 / 3))  # the app refuses before the RLIMIT would
    for var in (serving.TOKEN_VAR, serving.HOST_VAR, serving.PER_SESSION_VAR, serving.PER_SERVER_VAR, serving.DOWNLOADS_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path / "cwd")
    import core.jobs.runners  # noqa: F401  registers the lab's job kinds

    for kind in RunnerTable().kinds():  # every registered kind (RUNNERS holds only the overrides)
        monkeypatch.setitem(jobs.RUNNERS, kind, _refuse)  # a started study fails at once: nothing heavy runs
    from app_pages import _identity

    _identity._limiter.clear()
    with memory_limit():
        yield tmp_path


PROCESS_CACHES = ("torchinductor_",)  # what torch itself keeps in TMPDIR once per process, whatever the input


def tree(root: Path) -> dict[str, tuple[int, bool]]:
    """{path under root: (size, is a link)} of every file, folder and link (torch's own caches left out)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(PROCESS_CACHES)]
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (0 if os.path.isdir(p) else st.st_size, os.path.islink(p))
    return out


def _escaped(root: Path) -> list[str]:
    """Where an escaping entry or path would have landed (ESCAPE names them all)."""
    spots = [Path("/tmp") / ESCAPE, Path("/") / ESCAPE, root.parent / ESCAPE, root / ESCAPE, Path.home() / ESCAPE]
    spots += [p / ESCAPE for p in (root / "cache", root / "cache" / "users", root / "cache" / "users" / USER)]
    return [str(p) for p in spots if os.path.lexists(p)]


def _app(state: dict, page: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)
    at.session_state["_lab_user"] = USER  # signed in (tests/test_app_identity.py signs in by typing the token)
    for k, v in state.items():
        at.session_state[k] = v
    if page:
        at.switch_page(page)
    return at


def _run(at: AppTest) -> str | None:
    try:
        at.run()
    except MemoryError as exc:
        return f"MemoryError (past the {MEMORY_BUDGET >> 30} GiB budget): {exc}"
    except Exception as exc:  # AppTest: a script run past RUN_TIMEOUT, or an error of the harness
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    if at.exception:
        return "exception box: " + " | ".join(str(e.value).splitlines()[0][:300] for e in at.exception)
    return None


def _changes(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _settle(root: Path) -> None:
    """Wait for the started study (it fails at once) so the next case starts from an idle manager."""
    from app_pages._manager import manager

    for j in manager().jobs():
        if j.active:
            manager().wait(j.id, timeout=60)


def _upload(at: AppTest, case: Case) -> str | None:
    ups = at.get("file_uploader")
    if not ups:
        return "no file uploader on the page"
    ups[0].upload(case.name, case.data, "application/octet-stream")
    return _run(at)


def check_study(root: Path, case: Case) -> tuple[list[str], bool]:
    """(problems, refused) of one study file sent to the Study page and started."""
    before = tree(root)
    at = _app({"study_source": "upload"}, "app_pages/study.py")
    problems = [p for p in [_run(at)] if p]
    if not problems:
        problems += [p for p in [_upload(at, case)] if p]
    if not problems:
        go = [b for b in at.button if b.label == "Start study" and not b.disabled]
        if go:
            go[0].click()
            problems += [p for p in [_run(at)] if p]
    _settle(root)
    changed = _changes(before, tree(root))
    started = sorted({c.split(os.sep)[1] for c in changed if c.startswith("runs" + os.sep)})
    refused = not started
    if case.refuse and not refused:
        problems.append(f"not refused: started {started}")
    if case.refuse is False and refused:
        problems.append("refused a study that must start: " + " | ".join(e.value[:200] for e in at.error))
    problems += [f"written outside its run folder: {c}" for c in changed if not (c.startswith("runs" + os.sep) or c == "runs")]
    for rid in started:
        cfg = (root / "runs" / rid / "config.json")
        if cfg.exists():
            saved = json.loads(cfg.read_text())
            if saved.get("device") is not None or saved.get("cpu_lanes") not in (None, 1):
                problems.append(f"device/cpu_lanes kept on a shared server: {saved.get('device')!r}, {saved.get('cpu_lanes')!r}")
        shutil.rmtree(root / "runs" / rid, ignore_errors=True)
    return problems, refused


def check_archive(root: Path, case: Case) -> tuple[list[str], bool]:
    """(problems, refused) of one zip sent to the Dataset page's uploader."""
    before = tree(root)
    at = _app({"ds_dataset": "imagefolder", "ds_source_imagefolder": "zip upload"}, None)
    problems = [p for p in [_run(at)] if p]
    if not problems:
        problems += [p for p in [_upload(at, case)] if p]
    after = tree(root)
    changed = _changes(before, after)
    data_dir = (at.session_state["data_cfg"] or {}).get("data_dir") if "data_cfg" in at.session_state else None
    own = os.path.join("cache", "users", USER) + os.sep
    refused = bool(at.error) or not (data_dir and str(data_dir).startswith(str(root / own)))
    if case.refuse and not refused:
        problems.append(f"not refused: loaded as {data_dir}")
    if case.refuse is False and refused:
        problems.append("refused a zip that must load: " + " | ".join(e.value[:200] for e in at.error))
    if refused:
        problems += [f"left on disk after a refusal: {c}" for c in changed]
    else:
        problems += [f"written outside its folder: {c}" for c in changed
                     if not (c.startswith((own, os.path.join("cache", "datasets"))) or (c + os.sep) in (own, "cache" + os.sep)
                             or c in (os.path.join("cache", "users"), os.path.join("cache", "datasets")))]
    problems += [f"a symbolic link: {k}" for k, (_, link) in after.items() if link]
    shutil.rmtree(root / "cache" / "users" / USER, ignore_errors=True)  # the next case starts from an empty folder
    shutil.rmtree(root / "cache" / "datasets", ignore_errors=True)
    return problems, refused


def _sweep(root: Path, kind: str, cases: list[Case], check) -> None:
    failures = []
    for case in cases:
        t0 = time.time()
        problems, refused = check(root, case)
        left = [n for n in os.listdir(root / "tmp") if not n.startswith(PROCESS_CACHES)]
        problems += [f"tmp not empty: {left}"] if left else []
        problems += [f"escaped to {p}" for p in _escaped(root)]
        if LOG:  # one line per input (bench/input_sweep.py counts them)
            with open(LOG, "a") as f:
                f.write(json.dumps({"kind": kind, "inputs": {"label": case.label, "bytes": len(case.data)}, "refused": refused,
                                    "problems": problems, "seconds": round(time.time() - t0, 3)}) + "\n")
        if problems:
            failures.append(f"{case.label}: {problems}")
    if failures and not COLLECT:
        pytest.fail(f"{len(failures)} of {len(cases)} {kind} inputs went wrong:\n" + "\n".join(failures[:20]))


def test_hostile_study_files_are_refused_and_leave_nothing(upload_env):
    _sweep(upload_env, "study", subset(study_cases(), "study"), check_study)


def test_hostile_archives_are_refused_and_leave_nothing(upload_env):
    _sweep(upload_env, "archive", subset(archive_cases(), "archive"), check_archive)
