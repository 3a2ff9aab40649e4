"""A study folder written before issue 31 moved core/'s modules into packages resumes after the move.

``tests/fixtures/study_before_move/folder`` was written at commit ec99407, before the move (when
the modules ``experiment``, ``cells`` and ``study_rows`` still sat at the top of core/), by
``experiment --config study.toml --out out --device cpu`` (its README says how; its ``checkpoints/``
folders were removed: a finished cell is found by its ``results.json``).

Resuming it with today's code must find every cell finished (nothing is trained again), plan the same
cell ids in the same order, and leave every file of the folder byte for byte as it was, except the
two a run always rewrites (status.json, and results.json for its timing), whose rows stay the same.

No file of a study folder stores a dotted module path (the cells' ``CellTask`` target,
``core.study.cells:run_cell``, is built by ``run_study`` each run and never saved), so no old → new
path mapping is needed where folders are read; the last test keeps it that way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from core.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "study_before_move"
REWRITTEN = {"status.json", "results.json"}  # what every run of a study writes again (its state; the seconds it took)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def folder(tmp_path, monkeypatch) -> Path:
    """The fixture's folder as ``out`` in the working directory, where it was written: its cells name
    their run folders relative to it (``"run_dir": "out/cells/..."``), and the paired verdicts' test-noise
    term reads each cell's test_logits.safetensors through them."""
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    shutil.copytree(FIXTURE / "folder", out)
    return out


def test_a_study_written_before_the_move_resumes_after_it(folder, monkeypatch, capsys):
    import core.train.batched as batched
    import core.train.cfg_unet as train_cfg

    trained = []
    monkeypatch.setattr(train_cfg, "train_cfg", lambda *a, **k: trained.append(("cfg", a)))
    monkeypatch.setattr(batched, "train_runs", lambda jobs, *a, **k: trained.append(("classifier", len(jobs))))
    before = _digests(folder)
    saved_status = json.loads((folder / "status.json").read_text())
    saved_rows = json.loads((folder / "results.json").read_text())["rows"]
    assert saved_status["state"] == "done" and len(saved_status["cells"]) == 6 and len(saved_rows) == 3
    assert saved_rows[0]["vs"]["oversample"]["test_noise"] is True  # read back from the cells' test logits

    rc = main(["experiment", "--config", str(FIXTURE / "study.toml"), "--out", "out", "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)

    assert rc == 0 and trained == []  # every cell was found finished
    status = json.loads((folder / "status.json").read_text())
    assert list(status["cells"]) == list(saved_status["cells"])  # the same cell ids, in the same order
    assert {c: s["state"] for c, s in status["cells"].items()} == {c: "ok" for c in saved_status["cells"]}
    assert status["state"] == "done" and out["state"] == "done"
    assert out["rows"] == saved_rows and json.loads((folder / "results.json").read_text())["rows"] == saved_rows
    after = _digests(folder)
    assert sorted(after) == sorted(before)  # no file added or removed
    assert sorted(f for f in before if before[f] != after[f]) == sorted(REWRITTEN)  # results.csv too is byte for byte the same


def test_the_cells_of_the_old_folder_are_the_ones_planned_today():
    """The plan (ids and kinds) from today's code, against the folder's cells/ as written before the move."""
    from core.data.loading import load_dataset
    from core.data.profiles import target_counts
    from core.study.config import StudyConfig
    from core.study.plan import plan_study

    cfg = StudyConfig.from_toml(FIXTURE / "study.toml")
    plan = plan_study(cfg, target_counts(load_dataset(cfg.data).train.counts(), cfg.data))
    saved = json.loads((FIXTURE / "folder" / "status.json").read_text())["cells"]
    assert [(c.id, c.kind) for c in plan.cells] == [(cid, s["kind"]) for cid, s in saved.items()]
    assert sorted(p.name for p in (FIXTURE / "folder" / "cells").iterdir()) == sorted(saved)


def test_no_file_of_a_study_folder_names_a_core_module():
    """If a study folder ever stored a dotted path to a core module, a later move would have to map old
    names to new ones where the folder is read; none does (the provenance's command line names the
    CLI, `python -m core`, which never moves)."""
    module = re.compile(rb"(?<![\w.])core\.[a-z_]+(\.[a-z_]+)*(:[A-Za-z_]+)?")
    for p in sorted((FIXTURE / "folder").rglob("*")):
        if p.is_file() and p.suffix in (".json", ".jsonl", ".csv", ".txt", ".toml"):
            hits = [m.group(0) for m in module.finditer(p.read_bytes())]
            assert hits == [], f"{p.relative_to(FIXTURE)} names {hits}"


def test_a_moved_study_folder_keeps_its_test_noise_verdicts(tmp_path, monkeypatch, capsys):
    """The cells name their run folders as the study was started (``out/cells/...``, relative to
    that working directory). Opened from elsewhere after a move, each cell's results are re-anchored
    on the folder (core.study.plan.read_cell_result), so the paired verdicts still read the cells'
    test logits: every comparison keeps ``test_noise`` and the rows stay exactly as saved."""
    import core.train.batched as batched
    import core.train.cfg_unet as train_cfg
    from core.study.plan import read_cell_result

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    moved = tmp_path / "archive" / "2026" / "moved-study"
    shutil.copytree(FIXTURE / "folder", moved)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # "out/cells/..." does not exist from here
    trained = []
    monkeypatch.setattr(train_cfg, "train_cfg", lambda *a, **k: trained.append("cfg"))
    monkeypatch.setattr(batched, "train_runs", lambda jobs, *a, **k: trained.append("classifier"))
    saved_rows = json.loads((moved / "results.json").read_text())["rows"]
    clf = next(p.name for p in sorted((moved / "cells").iterdir()) if p.name.startswith("clf"))
    res = read_cell_result(moved, clf)
    assert res["run_dir"] == str(moved / "cells" / clf)
    assert all(p["run_dir"].startswith(str(moved / "curves" / clf)) for p in res["curve"]) and res["curve"]

    rc = main(["experiment", "--config", str(FIXTURE / "study.toml"), "--out", str(moved), "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and trained == []
    verdicts = [e for r in out["rows"] for e in (r.get("vs") or {}).values()]
    assert verdicts and all(e["test_noise"] is True for e in verdicts)
    assert out["rows"] == saved_rows
