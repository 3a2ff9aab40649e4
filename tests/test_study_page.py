"""The Study page (issue 20 item 2) and the core it reads: a running study's cells and rows so far.

The folder tests build a study folder by hand (config, status.json cells, cells' results.json)
with accuracies chosen so the aggregates are worked out by hand. The AppTest tests start the
fixture study (tests/fixtures/study_tiny.toml) through the page with an injected study runner
that writes such a folder, then cancel and resume it through the job manager.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.study import progress as sp
from core.study import start as study_start
from core.store.atomic import atomic_write_json, read_json
from core.errors import ConfigError, LabError
from core.study.config import StudyConfig
from core.study.presets import PRESET_INFO, PRESETS, preset_label
from core.store.runs import Run

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
FIXTURE = ROOT / "tests" / "fixtures" / "study_tiny.toml"
COUNTS = [2, 3, 4, 6, 8, 10, 14, 20, 30, 40]
# per-seed test accuracies of the finished classifier cells: (method, seed) -> accuracy
ACC = {("none", 0): 0.50, ("none", 1): 0.60, ("oversample", 0): 0.80, ("oversample", 1): 0.90, ("mixup", 0): 0.65}


def clf_result(acc: float) -> dict:
    """A classifier cell's results.json with what the rows read."""
    return {"accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc - 0.1, "minority_f1": acc - 0.2, "steps": 60, "images_seen": 1920,
            "train_size": 137, "batch_size": 32, "per_class_f1": [acc] * 10, "classes": [str(i) for i in range(10)],
            "minority_classes": [0, 1, 2], "train_images": 137, "test_size": 360, "imbalanced_counts": COUNTS,
            # a flat budget curve (30 -> 60 steps gains 0): converged, so its verdicts stand
            "curve": [{"steps": k, "accuracy": acc, "minority_f1": acc - 0.2} for k in (8, 15, 30)]}


def write_progress(folder: Path, cfg: StudyConfig, states: dict[str, str], status_state: str = "running", pending_in_status=()) -> None:
    """status.json with every planned cell (state from ``states``, else pending) and results.json
    for the ok ones (ACC for classifiers). ``pending_in_status``: cells status.json lists as pending
    although their results exist (a resumed study before it reached them)."""
    cells = {}
    for c in sp.plan_cells(cfg):
        state = states.get(c.id, "pending")
        cells[c.id] = {"kind": c.kind, "label": c.label, "state": "pending" if c.id in pending_in_status else state, "device": "cpu"}
        if state == "failed":
            cells[c.id]["error"] = "RuntimeError: boom"
        if state == "ok":
            d = folder / "cells" / c.id
            d.mkdir(parents=True, exist_ok=True)
            method, seed = c.id.split("__")[1], int(c.id.rsplit("seed", 1)[1])
            res = clf_result(ACC[(method, seed)]) if c.kind == "classifier" else {"seed": seed}
            atomic_write_json(d / "results.json", res)  # as the lab writes: the page may read at any moment
    status = read_json(folder / "status.json") or {}
    atomic_write_json(folder / "status.json", {**status, "state": status_state, "cells": cells})


OK_CELLS = {"cfg-train__seed0": "ok", "fill__oversample__seed0": "ok", "fill__mixup__seed0": "ok", "fill__oversample__seed1": "ok",
            "clf__none__small__seed0": "ok", "clf__none__small__seed1": "ok", "clf__oversample__small__seed0": "ok",
            "clf__oversample__small__seed1": "ok", "clf__mixup__small__seed0": "ok", "fill__cutmix__seed0": "failed",
            "fill__cfg_w0.1__seed0": "running"}


@pytest.fixture()
def tiny() -> StudyConfig:
    return StudyConfig.from_toml(FIXTURE)


def test_fixture_plan_has_24_cells_in_run_order(tiny):
    cells = sp.plan_cells(tiny)
    assert len(cells) == 24  # per seed: 1 CFG model + 5 fills (oversample, mixup, cutmix, cfg@0.1, cfg@3) + 6 classifiers
    assert [c.id for c in cells[:7]] == ["cfg-train__seed0", "fill__oversample__seed0", "fill__mixup__seed0", "fill__cutmix__seed0",
                                         "fill__cfg_w0.1__seed0", "fill__cfg_w3__seed0", "clf__none__small__seed0"]


def test_cell_states_grid_and_progress_text(tmp_path, tiny):
    write_progress(tmp_path, tiny, OK_CELLS, pending_in_status=("clf__none__small__seed1",))
    cells = sp.cell_states(tmp_path, tiny, active=True)
    # results.json on disk wins over status.json's "pending" (a resumed study lists every cell as pending first)
    assert cells["clf__none__small__seed1"]["state"] == "done"
    assert cells["fill__cutmix__seed0"] == {"kind": "fill", "label": "cutmix fill, seed 0", "state": "failed", "error": "RuntimeError: boom"}
    assert sp.progress_text(cells) == "9 of 24 cells done · 1 running · 13 pending · 1 failed"
    grid = sp.cell_grid(cells, tiny.seeds)
    assert list(grid.columns) == ["seed 0", "seed 1"] and len(grid) == 12
    assert list(grid.index[:3]) == ["CFG model", "oversample fill", "mixup fill"] and grid.index[-1] == "cfg@w=3 × small"
    assert grid.loc["CFG model"].tolist() == ["done", "pending"]
    assert grid.loc["cfg@w=0.1 fill"].tolist() == ["running", "pending"]
    assert grid.loc["none × small"].tolist() == ["done", "done"]
    # the study stopped (cancelled, or the server restarted): a cell left "running" is shown stopped
    stopped = sp.cell_states(tmp_path, tiny, active=False)
    assert stopped["fill__cfg_w0.1__seed0"]["state"] == "stopped"


def test_rows_so_far_with_partial_seeds_and_both_references(tmp_path, tiny):
    write_progress(tmp_path, tiny, OK_CELLS)
    rows, notes = sp.progress_rows(tmp_path, tiny, sp.cell_states(tmp_path, tiny, active=True))
    by = {r["method"]: r for r in rows}
    assert [r["method"] for r in rows] == ["none", "oversample", "mixup", "cutmix", "cfg@w=0.1", "cfg@w=3"]
    assert (by["none"]["seeds_label"], by["none"]["progress"]) == ("all 2 seeds", "done")
    assert (by["mixup"]["seeds_label"], by["mixup"]["progress"]) == ("1 of 2 seeds", "partial")
    assert (by["cutmix"]["seeds_label"], by["cutmix"]["progress"]) == ("0 of 2 seeds", "failed")
    assert (by["cfg@w=3"]["progress"], by["cfg@w=3"]["steps"]) == ("waiting", 60)  # planned steps from the finished cells' counts
    # none: mean of 0.50 and 0.60; Student t with 1 degree of freedom: 12.7062 · 0.0707107 / √2 = 0.63531,
    # so 0.55 ± 0.635 = [−0.085, 1.185], clipped to the accuracy's range [0, 1]
    assert by["none"]["accuracy"]["mean"] == pytest.approx(0.55)
    assert by["none"]["accuracy"]["ci95"] == [0.0, 1.0]
    # oversample − none, paired: 0.30 on both seeds -> a zero-width CI that excludes 0
    assert by["oversample"]["vs"]["none"]["diff_mean"] == pytest.approx(0.30)
    assert by["oversample"]["vs"]["none"]["verdict"] == "better" and by["oversample"]["vs"]["none"]["p_holm"] < 0.05
    # mixup has seed 0 only: 0.65 − 0.50 and 0.65 − 0.80, no CI from one seed
    assert by["mixup"]["vs"]["none"]["diff_mean"] == pytest.approx(0.15) and by["mixup"]["vs"]["none"]["ci95"] is None
    assert by["mixup"]["vs"]["oversample"]["diff_mean"] == pytest.approx(-0.15)
    frame = sp.verdict_frame(rows)
    assert frame["method"].tolist() == ["none", "oversample", "mixup", "cutmix", "cfg@w=0.1", "cfg@w=3"]  # done, partial, failed, waiting
    assert frame["progress"].tolist() == ["done", "done", "partial", "failed", "waiting", "waiting"]
    assert [c for c in frame.columns if c.startswith("vs ")] == [
        "vs none: Δ accuracy", "vs none: 95% CI", "vs none: verdict", "vs none: Δ minority F1", "vs none: minority F1 verdict",
        "vs oversample: Δ accuracy", "vs oversample: 95% CI", "vs oversample: verdict", "vs oversample: Δ minority F1",
        "vs oversample: minority F1 verdict"]
    mix = frame.iloc[2]
    assert (mix["seeds"], mix["vs none: 95% CI"], mix["vs none: verdict"]) == ("1 of 2 seeds", "n/a (one seed)", "n/a")
    assert frame.iloc[0]["vs none: verdict"] == "(itself)" and frame.iloc[1]["vs none: 95% CI"] == "[0.3000, 0.3000]"
    # cutmix's seed-0 fill failed: its classifier cell will not run and takes the failure (core.study.graph.blocked_by)
    assert frame.iloc[3]["why"] == "seed 0: fill__cutmix__seed0 failed: RuntimeError: boom"
    assert any("Student-t" in n for n in notes)


def test_bounds_seeds_uploads_and_data_roots(tmp_path, tiny):
    assert study_start.with_seeds(tiny, 4).seeds == [0, 1, 2, 3] and study_start.with_seeds(tiny, 1).seeds == [0]
    with pytest.raises(ConfigError, match="1 to 10"):
        study_start.with_seeds(tiny, 11)
    big = FIXTURE.read_text().replace("seeds = [0, 1]", f"seeds = {list(range(11))}")
    cfg = study_start.from_upload("mine.toml", big.encode())
    with pytest.raises(ConfigError, match=r"seeds = 11; a study started from the app allows at most 10"):
        study_start.check_bounds(cfg)
    with pytest.raises(ConfigError, match=r"^mine\.toml is not valid TOML"):
        study_start.from_upload("mine.toml", b"name = ")
    with pytest.raises(ConfigError, match="There is no study file 'x.toml' in studies/"):
        study_start.from_study_file("x.toml")
    assert "quick.toml" in study_start.study_files()
    inside, outside = tmp_path / "roots" / "data", tmp_path / "private"
    inside.mkdir(parents=True), outside.mkdir()
    (inside / "link").symlink_to(outside)
    for where, ok in ((inside, True), (inside / "link", False), (outside, False)):
        cfg = StudyConfig.from_dict({**tiny.to_dict(), "data": {**tiny.data.to_dict(), "data_dir": str(where)}})
        if ok:
            study_start.check_data_dir(cfg, [(tmp_path / "roots").resolve()])
        else:
            with pytest.raises(LabError, match="outside the data folders this server may read"):
                study_start.check_data_dir(cfg, [(tmp_path / "roots").resolve()])


# ----------------------------------------------------------------------------- the page
@pytest.fixture()
def app(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(study_start, "STUDIES_DIR", FIXTURE.parent)  # the fixture is offered as a file of studies/
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_intro_dismissed"] = True  # the first-visit strip (tested in test_app_compare) adds buttons and links
    at.run()
    assert not at.exception, at.exception
    at.switch_page("app_pages/study.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "error", "warning", "success") for e in at.get(kind))


def _progress(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress") if p.proto.text.startswith("**")]  # the page's, not the sidebar's jobs


def test_empty_state_says_what_to_do(app):
    assert "No study yet" in _texts(app) and "quick" in _texts(app)
    assert [b.label for b in app.button] == ["Start study"]
    (seeds,) = [n for n in app.number_input if n.key.startswith("study_seeds_preset_")]
    assert seeds.max == 10 and "1 to 10" in seeds.help


def test_presets_are_offered_with_their_expected_time(app):
    """Issue 27: the Study page offers cifar-cpu beside quick, each labelled with its time on 2 CPU cores."""
    (pick,) = [s for s in app.selectbox if s.key == "study_preset"]
    assert pick.options == [preset_label(n) for n in PRESETS] and "cifar-cpu" in PRESETS
    assert preset_label("quick") == f"quick (about {PRESET_INFO['quick']['minutes']} min on 2 CPU cores)"
    assert preset_label("paper") == "paper (needs a GPU)"
    pick.set_value("cifar-cpu").run()
    captions = [c.value for c in app.caption]
    assert any(c.startswith("CIFAR-10 at 8 px on 2 CPU cores") and "about 57 minutes" in c and "3,416 s" in c for c in captions)
    assert any(c.startswith("**cifar-cpu**: methods none, oversample, mixup, cutmix, cfg") and "every seed on the same imbalanced subset" in c
               for c in captions)
    pick.set_value("quick").run()  # quick draws a subset per seed, and says so
    assert any(c.startswith("**quick**: methods") and "each seed draws its own imbalanced subset" in c for c in (c.value for c in app.caption))


def test_start_watch_cancel_resume(app, runs_root, monkeypatch):
    """The fixture study through the page: a fake runner writes 9 finished cells and waits; the page
    shows the grid and the rows so far; Cancel and Resume go through the job manager."""
    reached, calls = threading.Event(), []

    def runner(ctx):
        cfg = StudyConfig.from_dict(ctx.config)
        calls.append(ctx.resume)
        if not ctx.resume:
            write_progress(ctx.run.path, cfg, OK_CELLS)
            reached.set()
            while not ctx.callbacks.should_stop():
                time.sleep(0.02)
            return None  # the manager records "cancelled"
        write_progress(ctx.run.path, cfg, {c.id: "ok" for c in sp.plan_cells(cfg) if c.kind != "classifier"}
                       | {k: v for k, v in OK_CELLS.items() if v == "ok"})
        return {"rows": 6}

    monkeypatch.setitem(jobs.RUNNERS, "study", runner)
    at = app
    at.radio(key="study_source").set_value("file in studies/").run()
    at.selectbox(key="study_file").set_value("study_tiny.toml").run()  # tests/fixtures holds other studies too
    next(b for b in at.button if b.label == "Start study").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert reached.wait(30)
    (study,) = [r for r in runs_root.iterdir() if r.is_dir()]
    assert Run(study).config["name"] == "tiny" and at.query_params["study"] == study.name
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _progress(at) == ["**running** · 9 of 24 cells done · 1 running · 13 pending · 1 failed"]
    grid = at.table[0].value
    assert grid.loc["CFG model"].tolist() == ["done", "pending"] and grid.loc["cutmix fill"].tolist() == ["failed", "pending"]
    (verdicts,) = [d.value for d in at.dataframe]
    assert verdicts["seeds"].tolist()[:3] == ["all 2 seeds", "all 2 seeds", "1 of 2 seeds"]
    assert verdicts.loc[1, "vs none: verdict"].startswith("better (p_holm = ") and verdicts.loc[1, "vs none: Δ accuracy"] == pytest.approx(0.30)
    assert [b.label for b in at.button if b.label in ("Cancel study", "Resume study")] == ["Cancel study"]

    next(b for b in at.button if b.label == "Cancel study").click().run()
    from app_pages._manager import manager

    assert manager().wait(study.name, 10).state == "cancelled"
    at.run()
    assert _progress(at) == ["**cancelled** · 9 of 24 cells done · 13 pending · 1 failed · 1 stopped"]
    assert at.table[0].value.loc["cfg@w=0.1 fill"].tolist() == ["stopped", "pending"]

    next(b for b in at.button if b.label == "Resume study").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert manager().wait(study.name, 10).state == "done" and calls == [False, True]
    at.run()
    # the resume ran the 12 CFG models and fills; the 5 classifiers finished before stay done
    assert _progress(at) == ["**done** · 17 of 24 cells done · 7 pending"]
    assert not [b for b in at.button if b.label in ("Cancel study", "Resume study")]
    # the link to Results carries the study and its dataset (so the caption's URL rewrite keeps the study)
    (link,) = [e.proto for e in at.get("page_link") if e.proto.page == "results"]
    assert link.label == "This study in Results" and link.query_string == f"dataset=digits&profile=custom&counts=2%2C3%2C4%2C6%2C8%2C10%2C14%2C20%2C30%2C40&study={study.name}"


def test_results_page_links_to_the_study_page(app):
    at = app.switch_page("app_pages/results.py").run()
    assert not at.exception
    assert [e.proto.label for e in at.get("page_link")] == ["Run a whole study (every method × classifier × seed) on the Study page"]


def test_sample_strip_names_each_neighbours_class_and_flags_another_class(tmp_path, tiny):
    import numpy as np
    import torch

    from core.data.imageset import ImageSet
    from core.data.loading import load_dataset
    from core.data.profiles import apply_profile
    from core.study.cells import save_generated as _save_generated
    from core.study.plan import sets_path as _sets_path

    train = apply_profile(load_dataset(tiny.data).train, tiny.data_for_seed(0))
    one, two = (int(torch.nonzero(train.labels == c)[0]) for c in (1, 2))
    # an exact copy of a class-1 training image filed as class 1, and a copy of the class-1 image filed as class 2
    images = torch.stack([train.images[one], train.images[one]])
    gen = ImageSet(images, torch.tensor([1, 2]), list(train.classes), provenance=np.array(["generated"] * 2, dtype=object))
    path = _sets_path(tmp_path, "oversample", 0)
    path.parent.mkdir(parents=True)
    _save_generated(path, gen)
    grid, names, neighbours = sp.sample_strip(tmp_path, tiny, 0, ["oversample"])
    assert names == [train.classes[1], train.classes[2]] and grid.ndim == 3
    assert neighbours == [f"oversample: {train.classes[1]} → {train.classes[1]}, {train.classes[2]} → {train.classes[1]} ⚠ another class"]
    assert two != one
