"""Issue 20, items 3 and 4: fair, readable comparisons on Results; export; the first minutes.

AppTest for the pages (each test its own runs folder, like tests/test_app_pages.py) and plain
tests for the pure builders in core.viz / core.study.tables / core.serving.workspace, with numbers worked
out by hand.
"""

from __future__ import annotations

import ast
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import jobs
from core.study import tables as report
from core.viz import figures as viz
from core.serving import workspace
from core.data.loading import DataConfig
from core.store.runs import Run, list_runs
from tests.helpers import cfg_run

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@pytest.fixture()
def app(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.info] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _frame(at: AppTest, column: str) -> pd.DataFrame:
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with column {column!r}"
    return found[0]


def _classifier_run(root: Path, method: str, steps: int, acc: float, seed: int = 0, batch: int = 32, cm=None, counts=None) -> Run:
    run = Run.create("classifier", {"data": {"dataset": "digits", "profile": "paper", "seed": seed}, "arch": "small", "seed": seed,
                                    "epochs": 3, "balance_method": method, "balance_params": {}}, root=root)
    res = {"steps": steps, "images_seen": steps * batch, "n": 360, "accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc,
           "minority_f1": acc, "minority_classes": [0, 1], "per_class_f1": [acc] * 10, "classes": [str(i) for i in range(10)],
           "arch": "small", "confusion_matrix": cm if cm is not None else np.eye(10, dtype=int).tolist(),
           "imbalanced_counts": counts}
    (run.path / "results.json").write_text(json.dumps(res))
    run.set_status("done")
    return run


# ------------------------------------------------------------------------- fair by default
def test_unequal_steps_are_marked_in_chart_and_table(app, runs_root):
    """The issue's case: `none` 9 steps against `oversample` 33 steps: flagged on both charts and in the table."""
    _classifier_run(runs_root, "none", 9, 0.097)
    _classifier_run(runs_root, "oversample", 33, 0.906)
    at = _page(app, "app_pages/results.py")
    table = _frame(at, "compute")
    rows = dict(zip(table["setting"], table["compute"]))
    assert rows == {"none · small": "⚠ differs: 9 steps, 288 images seen", "oversample · small": "⚠ differs: 33 steps, 1056 images seen"}
    for title in ("test accuracy", "macro-F1 per setting"):
        fig = next(c for c in _charts(at) if title in json.dumps(c["layout"].get("title", "")))
        notes = [a["text"] for a in fig["layout"].get("annotations", [])]
        assert notes == ["⚠ these runs differ in training steps (9 vs 33): not a like-for-like comparison"]
    assert any("Not a fair comparison" in w.value for w in at.warning)


def test_equal_steps_are_not_marked(app, runs_root):
    _classifier_run(runs_root, "none", 33, 0.50)
    _classifier_run(runs_root, "oversample", 33, 0.60)
    at = _page(app, "app_pages/results.py")
    table = _frame(at, "compute")
    assert list(table["compute"]) == ["same: 33 steps, 1056 images seen"] * 2
    fig = next(c for c in _charts(at) if "test accuracy" in json.dumps(c["layout"].get("title", "")))
    assert not [a for a in fig["layout"].get("annotations", []) if "differ" in a["text"]]
    assert not any("Not a fair comparison" in w.value for w in at.warning)


def test_unequal_compute_rules():
    # same steps, other batch sizes: flagged by images seen
    df = pd.DataFrame({"steps": [33, 33], "images_seen": [1056, 4224]})
    assert report.unequal_compute(df) == "these runs differ in images seen (1056 vs 4224): not a like-for-like comparison"
    # a group whose own runs differ ("9/33") differs even alone; unknown steps are left out
    assert report.unequal_compute(pd.DataFrame({"steps": ["9/33"]})) is not None
    assert report.unequal_compute(pd.DataFrame({"steps": [300.0, None, 300]})) is None
    # a study's rows: compared within (study, classifier) only
    rows = pd.DataFrame({"study": ["a", "a", "b"], "classifier": ["small"] * 3, "steps": [10, 20, 99], "images_seen": [None] * 3})
    assert report.compute_column(rows, by=["study", "classifier"]) == ["⚠ differs: 10 steps", "⚠ differs: 20 steps", "same: 99 steps"]


def test_classifier_form_budgets_in_steps_by_default(app, monkeypatch):
    seen = []
    monkeypatch.setitem(jobs.RUNNERS, "classifier", lambda ctx: seen.append(dict(ctx.config)))
    at = _page(app, "app_pages/train.py")
    assert at.radio(key="cls_budget").value.startswith("optimizer steps")
    assert at.number_input(key="cls_steps").value == 300
    next(b for b in at.button if b.label == "Start classifier training").click().run()
    deadline = time.time() + 20
    while not seen and time.time() < deadline:
        time.sleep(0.05)
    assert seen and seen[0]["steps"] == 300 and seen[0]["warmup_steps"] == 15  # 5 % of 300
    # epochs stays an option: steps is then left to the epochs
    at.radio(key="cls_budget").set_value(at.radio(key="cls_budget").options[1])
    at.number_input(key="cls_epochs").set_value(2)
    next(b for b in at.button if b.label == "Start classifier training").click().run()  # a form: values go with its submit
    deadline = time.time() + 20
    while len(seen) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert seen[1]["steps"] is None and seen[1]["warmup_steps"] is None and seen[1]["epochs"] == 2


# ----------------------------------------------------------------------- per-class F1 heat map
def test_per_class_heatmap_orders_minority_first_with_counts():
    rows = pd.DataFrame({"method": ["none", "none", "none", "cfg", "cfg", "cfg", "none", "none", "none"],
                         "class": [0, 1, 2, 0, 1, 2, 0, 1, 2],
                         "f1": [0.9, 0.1, 0.5, 0.8, 0.4, 0.6, 0.7, 0.3, 0.5]})  # two 'none' seeds
    fig = viz.per_class_f1_heatmap(rows, ["airplane", "automobile", "bird"], counts=[50, 5, 20]).to_dict()
    h = fig["data"][0]
    assert list(h["x"]) == ["automobile (n=5)", "bird (n=20)", "airplane (n=50)"]
    assert list(h["y"]) == ["none", "cfg"]
    # none: class 1 (0.1+0.3)/2 = 0.2, class 2 0.5, class 0 (0.9+0.7)/2 = 0.8; cfg: 0.4, 0.6, 0.8
    assert np.allclose(h["z"], [[0.2, 0.5, 0.8], [0.4, 0.6, 0.8]])
    # ties keep class order; no counts: class order, plain names
    assert viz.per_class_axis(["a", "b", "c"], [5, 5, 1]) == ([2, 0, 1], ["c (n=1)", "a (n=5)", "b (n=5)"])
    assert viz.per_class_axis(["a", "b"], None) == ([0, 1], ["a", "b"])


def test_results_per_class_heatmap_every_method(app, runs_root):
    counts = [10, 20, 30, 40, 50, 60, 70, 80, 90, 5]
    _classifier_run(runs_root, "none", 33, 0.5, counts=counts)
    _classifier_run(runs_root, "oversample", 33, 0.6, counts=counts)
    at = _page(app, "app_pages/results.py")
    heat = next(c for c in _charts(at) if "per-class F1" in json.dumps(c["layout"].get("title", "")))
    h = heat["data"][0]
    assert h["type"] == "heatmap" and sorted(h["y"]) == ["none · small", "oversample · small"]  # labelled as in the table (issue 25)
    assert h["x"] == ["9 (n=5)", "0 (n=10)", "1 (n=20)", "2 (n=30)", "3 (n=40)", "4 (n=50)", "5 (n=60)", "6 (n=70)", "7 (n=80)", "8 (n=90)"]
    assert not any(t.get("type") == "bar" for c in _charts(at) if "per-class" in json.dumps(c["layout"].get("title", "")) for t in c["data"])


# -------------------------------------------------------------------------- confusion matrices
def test_confusion_difference_numbers():
    a = [[8, 2], [1, 9]]   # rates [[.8, .2], [.1, .9]]
    b = [[6, 4], [3, 7]]   # rates [[.6, .4], [.3, .7]]
    d = viz.confusion_difference(a, b)
    assert np.allclose(d, [[-0.2, 0.2], [0.2, -0.2]])
    assert np.allclose(d.sum(axis=1), 0)
    # an empty row (a class never in the test set) counts as zeros, not NaN
    assert np.allclose(viz.confusion_difference([[0, 0], [5, 5]], [[0, 0], [0, 10]]), [[0, 0], [-0.5, 0.5]])
    fig = viz.confusion_difference_figure(a, b, ["cat", "dog"], "none", "cfg").to_dict()
    h = fig["data"][0]
    assert h["zmid"] == 0 and h["zmin"] == pytest.approx(-0.2) and h["zmax"] == pytest.approx(0.2) and h["colorscale"][0][1] != h["colorscale"][-1][1]
    with pytest.raises(ValueError, match="different shapes"):
        viz.confusion_difference([[1]], a)


def test_results_two_confusion_matrices_and_difference(app, runs_root):
    cm_a, cm_b = np.eye(10, dtype=int) * 10, np.eye(10, dtype=int) * 10
    cm_b[0, 0], cm_b[0, 1] = 6, 4  # B sends 40 % of class 0 to class 1
    _classifier_run(runs_root, "none", 33, 0.5, cm=cm_a.tolist())
    _classifier_run(runs_root, "oversample", 33, 0.6, cm=cm_b.tolist())
    at = _page(app, "app_pages/results.py")
    names = at.selectbox(key="res_cm").options
    at.selectbox(key="res_cm").set_value(next(n for n in names if "· none ·" in n)).run()
    at.selectbox(key="res_cm_b").set_value(next(n for n in names if "· oversample ·" in n)).run()
    charts = _charts(at)
    titles = [json.dumps(c["layout"].get("title", "")) for c in charts]
    assert any("A: none" in t for t in titles) and any("B: oversample" in t for t in titles)
    diff = next(c for c, t in zip(charts, titles) if "difference" in t)["data"][0]
    z = np.array(diff["z"])
    want = np.zeros((10, 10))
    want[0, 0], want[0, 1] = -0.4, 0.4
    assert np.allclose(z, want) and diff["zmid"] == 0


# ------------------------------------------------------------------------------------ export
def _plotly_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "plotly_chart":
            yield node


def test_every_plotly_chart_passes_chart_config():
    files = sorted((ROOT / "app_pages").glob("*.py")) + [ROOT / "app.py"]
    calls = 0
    for f in files:
        for call in _plotly_calls(ast.parse(f.read_text())):
            calls += 1
            kw = {k.arg: k.value for k in call.keywords}
            cfg = kw.get("config")
            ok = isinstance(cfg, ast.Call) and getattr(cfg.func, "id", getattr(cfg.func, "attr", None)) == "chart_config"
            assert ok, f"{f.name}:{call.lineno}: st.plotly_chart without config=chart_config(...)"
    assert calls >= 15  # every chart of the app, counted when this test was written


def test_chart_toolbar_downloads_png_1600_or_svg(app, runs_root):
    _classifier_run(runs_root, "none", 33, 0.5)
    at = _page(app, "app_pages/results.py")
    configs = [json.loads(c.proto.config) for c in at.get("plotly_chart")]
    assert configs and all(c["toImageButtonOptions"]["format"] == "png" and c["toImageButtonOptions"]["width"] >= 1600 for c in configs)
    at.radio(key="chart_format").set_value("SVG (vector)").run()
    configs = [json.loads(c.proto.config) for c in at.get("plotly_chart")]
    assert configs and all(c["toImageButtonOptions"]["format"] == "svg" for c in configs)
    assert configs[0]["toImageButtonOptions"]["filename"].startswith("imbalance-lab-")
    with pytest.raises(ValueError):
        viz.image_button_config("jpeg")


def test_grid_png_upscales_4x_nearest():
    grid = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)  # 1 x 2 pixels: red, blue
    img = np.asarray(Image.open(io.BytesIO(viz.grid_png(grid))))
    assert img.shape == (4, 8, 3)
    assert (img[:, :4] == [255, 0, 0]).all() and (img[:, 4:] == [0, 0, 255]).all()  # no blending at the edge


def test_image_grids_have_png_downloads(app):
    at = app  # the Dataset page: the real samples and the Mixup/CutMix preview
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("Download PNG (4×)") == 2


# ------------------------------------------------------------------------------ first visit
def test_first_visit_strip_links_and_dismisses(app, monkeypatch):
    at = app
    links = at.get("page_link")
    assert [link.proto.label for link in links] == ["1 · The data and its imbalance", "2 · Train a generator", "3 · Look at guidance",
                                                    "4 · Run the quick study"]
    assert [link.proto.page for link in links][:3] == ["", "train", "guidance"]  # the Dataset page is the default: "/"
    next(b for b in at.button if b.label == "Got it, hide this").click().run()
    assert not at.get("page_link")
    # the dismissal goes to this browser as a cookie (not to the server's workspace)
    htmls = [h.proto for h in at.get("html")]
    assert any("imbalance_lab_intro=dismissed" in h.body and h.unsafe_allow_javascript for h in htmls)
    ws = workspace.load()
    assert "intro" not in json.dumps(ws)
    at.run()
    assert not at.get("page_link") and not at.get("html")  # hidden; the cookie is written once


def test_first_visit_strip_hidden_when_the_browser_has_the_cookie(runs_root, tmp_path, monkeypatch):
    from app_pages import _first_visit

    monkeypatch.setattr(_first_visit, "_cookies", lambda: {"imbalance_lab_intro": "dismissed"})
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and not at.get("page_link")


# ------------------------------------------------------------------------------ empty states
def test_every_page_says_what_to_do_when_empty(app):
    want = {"app_pages/train.py": "No training runs yet. Start one above",
            "app_pages/generate.py": "train one on the **Train** page",
            "app_pages/guidance.py": "Train one on the **Train** page",
            "app_pages/results.py": "No runs yet. Train a model on the **Train** page"}
    for page, text in want.items():
        at = _page(app, page)
        assert text in _texts(at), page


# ------------------------------------------------------------------------------ model picker
def _cfg_on(root, name: str, data: dict) -> Run:
    run = cfg_run(root, name, "done", 10, 10)
    cfg = json.loads((run.path / "config.json").read_text())
    (run.path / "config.json").write_text(json.dumps({**cfg, "data": data}))
    return Run(run.path)


def test_model_picker_own_data_first_others_marked(runs_root):
    page = DataConfig(dataset="digits", profile="exponential", ratio=10)
    own = _cfg_on(runs_root, "own", {"dataset": "digits", "profile": "exponential", "ratio": 10})
    other = _cfg_on(runs_root, "other", {"dataset": "digits", "profile": "exponential", "ratio": 50})  # newer
    _cfg_on(runs_root, "cifar", {"dataset": "cifar10", "profile": "paper"})
    opts = workspace.cfg_models([r for r in list_runs(runs_root) if r.kind == "cfg"], data=page)
    assert [r.id for _, r in opts] == [own.id, other.id]
    assert opts[0][0] == f"{own.id} · 10 steps"
    assert opts[1][0] == f"{other.id} · 10 steps · ⚠ other data: exponential ratio 50"
    # settings a profile ignores do not make a split "other"
    assert workspace.same_split({"dataset": "digits", "profile": "paper", "ratio": 50}, DataConfig(dataset="digits", profile="paper"))


def test_generate_preselects_a_model_finished_since_last_shown(app, runs_root):
    at = _page(app, "app_pages/generate.py")
    at.selectbox(key="gen_choice").set_value("Mixup (two real images, λ)").run()
    next(b for b in at.button if b.label == "Generate preview").click().run()  # remembers Mixup
    _page(at, "app_pages/train.py")
    new = _cfg_on(runs_root, "fresh", {"dataset": "digits", "profile": "paper"})  # finishes while Train is shown
    at = _page(at, "app_pages/generate.py")
    assert at.selectbox(key="gen_choice").value == f"CFG model {new.id} · 10 steps"
    # shown once: the user's own choice sticks afterwards
    at.selectbox(key="gen_choice").set_value("Mixup (two real images, λ)").run()
    at = _page(_page(at, "app_pages/train.py"), "app_pages/generate.py")
    assert at.selectbox(key="gen_choice").value == "Mixup (two real images, λ)"
