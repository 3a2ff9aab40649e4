"""AppTest for every page: renders, key widgets, jobs launched through injected instant runners.

Each test gets its own runs folder (so its own JobManager via st.cache_resource keyed by
the folder). Fake runners replace only the training loops; generation/balancing use the
real code on the embedded digits set (instant for Mixup/CutMix).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import jobs
from core.store.checkpoint import save_checkpoint
from core.store.runs import Run, list_runs
from tests.helpers import cfg_run

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60


@pytest.fixture()
def app(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMBALANCE_LAB_DATA_ROOTS", str(tmp_path))  # the folders the tests make (core.serving)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[0]


def _manager():
    from app_pages._manager import manager

    return manager()


def _wait_all(timeout: float = 30) -> None:
    m = _manager()
    deadline = time.time() + timeout
    while any(j.active for j in m.jobs()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(j.active for j in m.jobs()), [j.summary() for j in m.jobs()]


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.error] + [e.value for e in at.warning]
    parts += [e.value for e in at.info] + [e.value for e in at.success]
    return "\n".join(str(p) for p in parts)


def _progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def fake_cfg_runner(ctx):
    """An instant 'CFG training': metrics, a preview PNG and a checkpoint, like the real loop."""
    from PIL import Image

    total = int(ctx.config.get("steps", 10))
    for step in range(1, total + 1):
        ctx.run.log_metrics({"step": step, "loss": 1.0 / step})
        ctx.callbacks.metrics({"step": step, "loss": 1.0 / step})
        ctx.progress(step, total, f"step {step}")
    path = ctx.run.images / f"preview_{total:06d}.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(path)
    ctx.callbacks.preview(path)
    save_checkpoint(ctx.run.checkpoints, "latest", {"w": torch.zeros(1)}, {"step": total}, {})


# ------------------------------------------------------------------------------ dataset
def test_dataset_page_renders_and_profile_changes_counts(app):
    at = app
    assert at.selectbox(key="ds_dataset").value == "digits"
    assert at.selectbox(key="ds_profile").value == "paper"
    assert at.get("plotly_chart"), "per-class counts chart missing"
    paper_total = int(at.metric[0].value.replace(",", ""))
    counts_fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    real_paper = counts_fig["data"][0]["y"]
    assert sum(real_paper) == paper_total and real_paper[0] < real_paper[-1]
    at.selectbox(key="ds_profile").set_value("full").run()
    assert not at.exception
    full_total = int(at.metric[0].value.replace(",", ""))
    assert full_total > paper_total and full_total == 1437  # sklearn digits, 80% train split
    assert at.session_state["data_cfg"]["profile"] == "full"
    real_full = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]
    assert real_full != real_paper and sum(real_full) == full_total
    # the choice carries over to another page
    _page(at, "app_pages/generate.py")
    assert "profile **full**" in _texts(at)


def test_dataset_bad_inputs_show_lab_errors(app, tmp_path):
    at = app
    at.selectbox(key="ds_profile").set_value("linear").run()
    # a ratio below 1 cannot be typed any more (the field's range is core.settings.bounds' 1..1000; a link's is clamped)
    assert (at.number_input(key="ds_ratio").min, at.number_input(key="ds_ratio").max) == (1, 1000)
    at.selectbox(key="ds_profile").set_value("custom").run()
    at.text_input(key="ds_counts_custom").set_value(",".join(["5000"] * 10)).run()
    assert not at.exception and any("only" in e.value and "exist" in e.value for e in at.error)
    # the session keeps the last valid choice (linear with the default ratio 10)
    assert at.session_state["data_cfg"]["profile"] == "linear" and at.session_state["data_cfg"]["ratio"] == 10.0

    at.selectbox(key="ds_profile").set_value("full").run()
    at.selectbox(key="ds_dataset").set_value("imagefolder").run()
    at.text_input(key="ds_dir_imagefolder").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception and any("not found" in e.value for e in at.error)

    empty = tmp_path / "empty_class"
    from tests.helpers import make_folder

    make_folder(empty, classes=("a", "b"), per_class=4)
    (empty / "c").mkdir()
    at.text_input(key="ds_dir_imagefolder").set_value(str(empty)).run()
    assert not at.exception and any("'c'" in e.value and "no images" in e.value for e in at.error)


def test_dataset_corrupt_files_are_listed_as_skipped(app, tmp_path):
    from tests.helpers import make_folder

    root = make_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=5)
    (root / "a" / "broken.png").write_bytes(b"not a png")
    at = app
    at.selectbox(key="ds_profile").set_value("full").run()
    at.selectbox(key="ds_dataset").set_value("imagefolder").run()
    at.text_input(key="ds_dir_imagefolder").set_value(str(root)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("1 file(s) were skipped" in w.value for w in at.warning)
    assert "broken.png" in at.dataframe[0].value.to_string()
    assert at.session_state["data_cfg"]["dataset"] == "imagefolder"


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_dataset_zip_upload_good_escaping_and_corrupt(app, tmp_path):
    from tests.helpers import write_image

    png = write_image(tmp_path / "x.png").read_bytes()
    at = app
    at.selectbox(key="ds_profile").set_value("full").run()
    at.selectbox(key="ds_dataset").set_value("imagefolder").run()
    at.radio(key="ds_source_imagefolder").set_value("zip upload").run()
    up = at.get("file_uploader")[0]
    evil = _zip({"data/a/0.png": png, "../../escape.png": png})
    up.upload("evil.zip", evil, "application/zip")
    at.run()
    assert not at.exception and any("outside the extraction folder" in e.value for e in at.error)
    assert not (tmp_path / "escape.png").exists()

    at.get("file_uploader")[0].set_value(("bad.zip", b"PK\x03\x04 truncated garbage", "application/zip"))
    at.run()
    assert not at.exception and any("not a valid zip" in e.value for e in at.error)

    good = _zip({f"data/{c}/{i}.png": png for c in ("a", "b") for i in range(4)})
    at.get("file_uploader")[0].set_value(("good.zip", good, "application/zip"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["data_cfg"]["dataset"] == "imagefolder"
    assert at.session_state["data_cfg"]["data_dir"].endswith(".zip")


# -------------------------------------------------------------------------------- train
def test_train_page_launches_cfg_job_and_shows_progress_then_result(app, monkeypatch):
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    at = _page(app, "app_pages/train.py")
    assert at.selectbox(key="cfg_preset").value == "tiny"
    assert at.number_input(key="cfg_steps") and at.selectbox(key="cfg_sampler") and at.selectbox(key="cls_arch")
    at.number_input(key="cfg_steps").set_value(7)
    _button(at, "Start CFG training").click().run()
    assert not at.exception and any("Started cfg job" in s.value for s in at.success)
    runs = list_runs()
    assert len(runs) == 1 and runs[0].kind == "cfg" and runs[0].config["steps"] == 7 and runs[0].config["data"]["dataset"] == "digits"
    assert any(runs[0].id in t for t in _progress_texts(at))  # its panel is shown at once (queued or running)
    _wait_all()
    at.run()
    texts = _progress_texts(at)
    assert any("**done**" in t and "step 7/7" in t for t in texts), texts
    assert at.get("plotly_chart"), "loss curve missing"
    assert at.get("image"), "preview image missing"


def test_train_page_passes_the_tail_aware_settings(app, monkeypatch):
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    at = _page(app, "app_pages/train.py")
    assert at.number_input(key="cfg_cbdm_tau").value == 0.0 and at.selectbox(key="cfg_cbdm_target").options == ["train", "uniform"]
    at.checkbox(key="cfg_uniform").check()
    at.number_input(key="cfg_cbdm_tau").set_value(1.5)
    at.selectbox(key="cfg_cbdm_target").set_value("uniform")
    _button(at, "Start CFG training").click().run()
    _wait_all()
    cfg = list_runs()[0].config
    assert (cfg["uniform_classes"], cfg["cbdm_tau"], cfg["cbdm_target"]) == (True, 1.5, "uniform")


def test_train_page_shows_failure_and_oom_messages(app, monkeypatch):
    def oom(ctx):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setitem(jobs.RUNNERS, "cfg", oom)
    at = _page(app, "app_pages/train.py")
    _button(at, "Start CFG training").click().run()
    _wait_all()
    at.run()
    assert not at.exception
    assert any("Out of memory" in e.value and "lower the batch size" in e.value for e in at.error)


def test_train_page_classifier_job_and_second_job_queues(app, monkeypatch):
    import threading

    gate = threading.Event()

    def slow(ctx):
        ctx.progress(1, 4, "epoch 1/4")
        gate.wait(20)
        ctx.progress(4, 4, "epoch 4/4")

    monkeypatch.setitem(jobs.RUNNERS, "classifier", slow)
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    at = _page(app, "app_pages/train.py")
    _button(at, "Start classifier training").click().run()
    _button(at, "Start CFG training").click().run()
    assert any("queued behind 1" in s.value for s in at.success), [s.value for s in at.success]
    states = {r.kind: r.status["state"] for r in list_runs()}
    assert states["cfg"] == "queued"
    gate.set()
    _wait_all()
    at.run()
    assert {r.status["state"] for r in list_runs()} == {"done"}
    cfg_run = next(r for r in list_runs() if r.kind == "classifier")
    assert cfg_run.config["arch"] == "small" and cfg_run.config["balance_method"] == "none"


def test_removed_run_folder_while_shown(app, monkeypatch):
    import shutil

    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    at = _page(app, "app_pages/train.py")
    _button(at, "Start CFG training").click().run()
    _wait_all()
    rid = at.session_state["train_focus"]
    shutil.rmtree(list_runs()[0].path)
    at.run()
    assert not at.exception
    assert any(rid in w.value and "removed" in w.value for w in at.warning)


def test_interrupted_run_can_be_resumed_from_the_page(app, monkeypatch, runs_root):
    seen = []

    def record(ctx):
        seen.append(ctx.resume)
        fake_cfg_runner(ctx)

    monkeypatch.setitem(jobs.RUNNERS, "cfg", record)
    run = Run.create("cfg", {"steps": 3, "data": {"dataset": "digits"}}, root=runs_root)
    run.set_status("interrupted", message="the server stopped")
    at = _page(app, "app_pages/train.py")
    _button(at, "Resume").click().run()
    _wait_all()
    at.run()
    assert seen == [True] and run.status["state"] == "done"


# ----------------------------------------------------------------------------- generate
def test_generate_page_mixup_preview_download_and_balance(app):
    at = _page(app, "app_pages/generate.py")
    labels = at.selectbox(key="gen_choice").options
    assert any(o.startswith("Mixup") for o in labels) and any(o.startswith("CutMix") for o in labels)
    assert not any(o.startswith("CFG model") for o in labels)
    at.selectbox(key="gen_choice").set_value(next(o for o in labels if o.startswith("Mixup")))
    at.number_input(key="gen_count").set_value(4)
    at.number_input(key="gen_seed").set_value(11)
    _button(at, "Generate preview").click().run()
    _wait_all()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    run = next(r for r in list_runs() if r.kind == "generate")
    assert run.status["state"] == "done" and run.config["seed"] == 11 and run.config["method"] == "mixup"
    params = json.loads((run.path / "params.json").read_text())
    assert params["generator"]["lam"] == 0.6 and params["count"] == 4
    imgs = at.get("image")
    assert len(imgs) == 1  # one labelled grid: per class a real row over a generated row
    # core.metrics.novelty is in: above each generated row, each image's nearest training image
    assert any("the nearest training image of each generated image" in c.value for c in at.caption), [c.value for c in at.caption]
    assert any("newest preview: mixup · λ 0.6 · seed 11" in c.value for c in at.caption), [c.value for c in at.caption]
    dl = [d for d in at.get("download_button")]
    assert dl, "download button missing"
    from core.jobs.runners import export_zip

    with zipfile.ZipFile(io.BytesIO(export_zip(run.path))) as zf:
        names = zf.namelist()
        assert "params.json" in names and sum(n.endswith(".png") for n in names) == 4 * len(params["classes"])
    # reuse last seed
    at.number_input(key="gen_seed").set_value(99)
    at.checkbox(key="gen_reuse").check()
    _button(at, "Balance the dataset with this generator").click().run()
    _wait_all()
    at.run()
    bal = next(r for r in list_runs() if r.kind == "balance")
    assert bal.status["state"] == "done" and bal.config["seed"] == 11
    from core.jobs.runners import BALANCED, load_imageset

    s = load_imageset(bal.path / BALANCED)
    assert len(set(s.counts())) == 1 and "mixup" in set(s.provenance)
    assert any("Balanced set saved" in m.value for m in at.success)


def test_generate_page_keeps_a_side_by_side_strip_of_previews(app):
    at = _page(app, "app_pages/generate.py")
    labels = at.selectbox(key="gen_choice").options
    for lam in (0.3, 0.8):
        at.selectbox(key="gen_choice").set_value(next(o for o in labels if o.startswith("Mixup")))
        at.slider(key="gen_lam").set_value(lam)
        at.number_input(key="gen_count").set_value(2)
        _button(at, "Generate preview").click().run()
        _wait_all()
    at.run()
    assert not at.exception and not at.error
    assert any("Side by side" in h.value for h in at.subheader)
    assert len(at.get("image")) == 3  # the newest (with real rows) + both previews side by side
    strip = [m.value for m in at.markdown if m.value.startswith("**mixup")]
    assert strip == ["**mixup · λ 0.8 · seed 0**", "**mixup · λ 0.3 · seed 0**"]
    # the form remembers its values after a page switch
    _page(at, "app_pages/dataset.py")
    _page(at, "app_pages/generate.py")
    assert at.number_input(key="gen_count").value == 2


def test_generate_page_shows_the_nearest_training_image_when_available(app, monkeypatch):
    """Issue 13's core.metrics.novelty.nearest_training, faked here: one dict per preview image."""
    import sys
    import types

    calls = []

    def nearest_training(preview, train, *a, **k):
        calls.append(len(preview))
        return [{"image": train.images[0], "distance": 0.0} for _ in range(len(preview))]

    monkeypatch.setitem(sys.modules, "core.metrics.novelty", types.SimpleNamespace(nearest_training=nearest_training))
    at = _page(app, "app_pages/generate.py")
    at.selectbox(key="gen_choice").set_value(next(o for o in at.selectbox(key="gen_choice").options if o.startswith("Mixup")))
    at.number_input(key="gen_count").set_value(2)
    _button(at, "Generate preview").click().run()
    _wait_all()
    at.run()
    assert not at.exception
    assert any("nearest training image of each generated image" in c.value for c in at.caption)
    assert calls and calls[-1] == 2 * len(at.multiselect(key="gen_classes").value)


def test_generate_page_lists_trained_cfg_runs_with_w_and_scale(app, monkeypatch):
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    m = _manager()
    job = m.submit("cfg", {"steps": 2, "data": {"dataset": "digits", "profile": "paper"}})
    m.wait(job.id, 10)
    at = _page(app, "app_pages/generate.py")
    cfg_label = next(o for o in at.selectbox(key="gen_choice").options if o.startswith("CFG model"))
    at.selectbox(key="gen_choice").set_value(cfg_label).run()
    at.number_input(key="gen_w_cfg").set_value(2.0).run()
    assert "guidance_scale = 1 + w = **3**" in _texts(at)
    assert at.selectbox(key="gen_sampler").value == "dpm"


# ----------------------------------------------------------------------------- guidance
def test_guidance_page_without_model_explains_and_shows_eq8(app):
    at = _page(app, "app_pages/guidance.py")
    assert at.get("latex") and "(1 + w)" in at.get("latex")[0].proto.body
    assert "No trained CFG model" in _texts(at)


def test_guidance_page_runs_sweep_and_shows_grid_and_curves(app, monkeypatch):
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)

    def fake_sweep(ctx):
        ws, seeds = ctx.config["ws"], ctx.config["seeds"]
        grid = np.random.default_rng(0).integers(0, 255, (len(ws), len(seeds), 1, 16, 16), dtype=np.uint8)
        np.save(ctx.run.path / "sweep.npy", grid)
        for i, w in enumerate(ws):
            ctx.run.log_metrics({"w": w, "guidance_scale": 1 + w, "class_consistency": min(1.0, 0.5 + 0.1 * w), "diversity": 1.0 / (1 + w), "n": 4,
                                 "near_copy_rate": 0.1 * i, "precision": 0.9, "recall": 0.5 - 0.1 * i, "n_train": 2, "features": "FD (judge CNN features)"})
            ctx.progress(i + 1, len(ws))

    monkeypatch.setitem(jobs.RUNNERS, "guidance", fake_sweep)
    m = _manager()
    m.wait(m.submit("cfg", {"steps": 2, "data": {"dataset": "digits", "profile": "paper"}}).id, 10)
    at = _page(app, "app_pages/guidance.py")
    assert at.text_input(key="gd_ws").value == "0, 0.1, 0.5, 1, 2, 4, 7.5"
    at.text_input(key="gd_ws").set_value("0, 1, 7.5")
    _button(at, "Run the sweep").click().run()
    _wait_all()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run = next(r for r in list_runs() if r.kind == "guidance")
    assert run.config["ws"] == [0.0, 1.0, 7.5] and run.config["seeds"] == list(range(6))
    assert len(at.get("image")) >= 3  # one row per w
    assert "w = **7.5**" in _texts(at) and "scale 8.5" in _texts(at)
    assert len(at.get("plotly_chart")) == 2, "consistency/diversity and near-copy/precision/recall curves"
    captions = " ".join(c.value for c in at.caption)
    assert "how real they look" in captions and "how much of the real variety they cover" in captions and "2 training images" in captions
    at.text_input(key="gd_ws").set_value("0, -1")
    _button(at, "Run the sweep").click().run()
    assert any("w must be >= 0" in e.value for e in at.error)


def test_guidance_picker_orders_labels_and_remembers(app, runs_root, monkeypatch):
    import threading

    done = cfg_run(runs_root, "done", "done", 40, 40)
    cancelled = cfg_run(runs_root, "cut", "cancelled", 7, 250)  # newer, but a finished model comes first
    release = threading.Event()

    def slow_sweep(ctx):  # stays running until released
        release.wait(30)

    monkeypatch.setitem(jobs.RUNNERS, "guidance", slow_sweep)
    at = _page(app, "app_pages/guidance.py")
    box = at.selectbox(key="gd_model")
    assert box.options == [f"{done.id} · 40 steps", f"{cancelled.id} · ⚠ CANCELLED, 7 of 250 steps"]
    assert box.value == done.id
    box.set_value(cancelled.id)
    at.text_input(key="gd_ws").set_value("0, 2")
    at.number_input(key="gd_seeds").set_value(3)
    _button(at, "Run the sweep").click().run()
    assert [r.config["cfg_run"] for r in list_runs() if r.kind == "guidance"] == [cancelled.id]
    # the same sweep again while the first still runs: asked, not started
    _button(at, "Run the sweep").click().run()
    assert len([r for r in list_runs() if r.kind == "guidance"]) == 1
    assert any("An identical guidance job" in w.value for w in at.warning)
    _button(at, "Don't start it").click().run()
    release.set()
    _wait_all()
    # the form keeps the user's values after a page switch
    _page(at, "app_pages/dataset.py")
    _page(at, "app_pages/guidance.py")
    assert at.selectbox(key="gd_model").value == cancelled.id
    assert at.text_input(key="gd_ws").value == "0, 2" and at.number_input(key="gd_seeds").value == 3


# ------------------------------------------------------------------------------ results
def _fake_classifier_run(root: Path, method: str, arch: str, seed: int, acc: float, epochs: int = 30, device: str = "cpu") -> Run:
    run = Run.create("classifier", {"data": {"dataset": "digits", "profile": "paper", "seed": seed}, "arch": arch, "seed": seed, "epochs": epochs,
                                    "device": device, "balance_method": method, "balance_params": {"w": 7.5} if method == "cfg" else {}}, root=root)
    classes = [str(i) for i in range(10)]
    res = {"steps": epochs * 11, "n": 360, "accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc - 0.01, "minority_f1": acc - 0.1, "minority_classes": [0, 1, 2],
           "per_class_f1": [acc] * 10, "classes": classes, "arch": arch, "confusion_matrix": np.eye(10, dtype=int).tolist()}
    (run.path / "results.json").write_text(json.dumps(res))
    run.set_status("done")
    return run


def test_results_page_empty_and_with_runs(app, runs_root):
    at = _page(app, "app_pages/results.py")
    assert "No runs yet" in _texts(at)
    for seed, acc in [(0, 0.8), (1, 0.84)]:
        _fake_classifier_run(runs_root, "mixup", "small", seed, acc)
        _fake_classifier_run(runs_root, "cfg", "small", seed, acc + 0.05)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.dataframe) >= 2  # runs table + summary
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    acc_chart = next(c for c in charts if "accuracy" in json.dumps(c.get("layout", {}).get("title", "")))
    trace = acc_chart["data"][0]
    assert sorted(trace["x"]) == ["cfg@w=7.5 · small", "mixup · small"]
    ys = dict(zip(trace["x"], trace["y"]))
    assert ys["mixup · small"] == pytest.approx(82.0) and ys["cfg@w=7.5 · small"] == pytest.approx(87.0)
    # two seeds of one setting: the 95% Student-t CI, t(0.975, 1) = 12.706, std = 0.02·√2/… by hand:
    # values 80, 84 -> mean 82, std 2.828, half = 12.706 · 2.828 / √2 = 25.41 (clipped by nothing: an honest wide bar)
    err = dict(zip(trace["x"], trace["error_y"]["array"]))
    assert err["mixup · small"] == pytest.approx(25.41, abs=0.01)
    assert acc_chart["layout"]["yaxis"]["range"] == [0, 100]
    assert not any("paper" in str(t.get("name", "")) for t in acc_chart["data"])
    at.toggle(key="res_paper").set_value(True).run()
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    acc_chart = next(c for c in charts if "accuracy" in json.dumps(c.get("layout", {}).get("title", "")))
    paper = [t for t in acc_chart["data"] if "paper (Yoo et al. 2024, reported)" in str(t.get("name"))]
    assert paper and dict(zip(paper[0]["x"], paper[0]["y"]))["sd"] == 83.7
    assert at.get("download_button")
    at.multiselect(key="res_compare").set_value([r.id for r in list_runs()][:2]).run()
    assert not at.exception


def _frame(at: AppTest, column: str):
    """The first dataframe on the page that has ``column`` (AppTest does not expose dataframe keys)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with column {column!r}"
    return found[0]


def test_results_never_pools_runs_with_different_settings(app, runs_root):
    """The issue's case: a 5-epoch and a 30-epoch 'none' run, both seed 0, are two series
    (no error bar, labelled by what differs), never 53.9 ± 60.1 %; the device does not split."""
    _fake_classifier_run(runs_root, "none", "small", 0, 0.114, epochs=5)
    _fake_classifier_run(runs_root, "none", "small", 0, 0.964, epochs=30)
    _fake_classifier_run(runs_root, "none", "small", 1, 0.960, epochs=30, device="cuda")  # device does not change results
    at = _page(app, "app_pages/results.py")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    acc = next(c for c in charts if "accuracy" in json.dumps(c.get("layout", {}).get("title", "")))
    t = acc["data"][0]
    ys = dict(zip(t["x"], t["y"]))
    assert ys == {"none · small (epochs=5)": pytest.approx(11.4), "none · small (epochs=30)": pytest.approx(96.2)}
    errs = dict(zip(t["x"], t["error_y"]["array"]))
    assert errs["none · small (epochs=5)"] == 0.0  # one run: no error bar
    assert acc["layout"]["yaxis"]["range"] == [0, 100]
    f1 = next(c for c in charts if "macro-F1" in json.dumps(c.get("layout", {}).get("title", "")))
    assert f1["layout"]["yaxis"]["range"] == [0, 1]
    table = _frame(at, "setting")
    rows = {r["setting"]: r for r in table.to_dict("records")}
    assert rows["none · small (epochs=5)"]["n runs"] == 1 and rows["none · small (epochs=5)"]["training steps"] == "55"
    assert rows["none · small (epochs=30)"]["n runs"] == 2 and "std over 2 seeds" in rows["none · small (epochs=30)"]["accuracy"]
    assert "(one run)" in rows["none · small (epochs=5)"]["accuracy"]
    # Wilson 95% half-width of 0.114 on 360 test images (k = 41): 1.96·√(41·319/360 + 1.96²/4)/(360 + 1.96²) = 0.0329
    assert rows["none · small (epochs=5)"]["± test set (accuracy)"] == "±0.0329"


def test_results_shows_study_rows_and_verdicts(app, runs_root):
    """The study contract (issue 9): rows with state/steps/n_seeds, metrics as {mean, std, ci95}, and vs verdicts."""
    run = Run.create("study", {"name": "quick"}, root=runs_root)
    m = {"mean": 0.9, "std": 0.01, "ci95": [0.88, 0.92]}
    rows = [{"method": "cfg@w=7.5", "classifier": "small", "state": "ok", "steps": 300, "images_seen": 38400, "train_size": 1280, "n_seeds": 3,
             "seeds": [0, 1, 2], "accuracy": m, "macro_f1": m, "minority_f1": m,
             "vs": {"none": {"metric": "macro_f1", "diff_mean": 0.004, "ci95": [-0.01, 0.018], "verdict": "inconclusive"}}},
            {"method": "none", "classifier": "small", "state": "failed", "steps": None, "n_seeds": 0, "seeds": [],
             "accuracy": {"mean": None, "std": None, "ci95": None}, "macro_f1": None, "minority_f1": None, "vs": {}}]
    (run.path / "results.json").write_text(json.dumps({"study": "quick", "rows": rows}))
    run.set_status("done")
    at = _page(app, "app_pages/results.py")
    v = _frame(at, "verdict")
    assert v.to_dict("records")[0]["verdict"] == "inconclusive" and v.to_dict("records")[0]["95% CI"] == "[-0.0100, +0.0180]"
    assert any("not that the methods are equal" in c.value for c in at.caption)
    srows = _frame(at, "images_seen")
    assert list(srows["state"]) == ["ok", "failed"] and int(srows["steps"].iloc[0]) == 300
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    sacc = next(c for c in charts if "study accuracy" in json.dumps(c.get("layout", {}).get("title", "")))
    t = sacc["data"][0]
    assert len(t["x"]) == 1 and t["x"][0].endswith("cfg@w=7.5") and t["y"] == [pytest.approx(90.0)]  # the failed row has no bar
    assert t["error_y"]["array"] == [pytest.approx(2.0)] and t["error_y"]["arrayminus"] == [pytest.approx(2.0)]


def test_results_shows_a_below_gate_row_with_its_gate_and_no_verdict(app, runs_root):
    """Issue 17 item 2: a row trained on a fill below the generator gate keeps its figures, says below_gate
    with ✗ and the gate's three figures, and its verdict is 'below gate' (not a failure)."""
    run = Run.create("study", {"name": "quick"}, root=runs_root)
    m = {"mean": 0.8, "std": 0.01, "ci95": [0.78, 0.82]}
    gate = {"passed": False, "tail_consistency": 0.4, "precision": 0.7, "near_copy_rate": 0.05,
            "rule": "mean over seeds 0, 1: tail consistency ≥ 0.8 (classes 0, 1, 2), precision ≥ 0.5, tail near-copy rate ≤ 0.2",
            "thresholds": {"tail_consistency": 0.8, "precision": 0.5, "near_copy_rate": 0.2}, "per_seed": {}}
    rows = [{"method": "none", "classifier": "small", "state": "ok", "steps": 300, "n_seeds": 2, "seeds": [0, 1], "accuracy": m,
             "macro_f1": m, "minority_f1": m, "vs": {}},
            {"method": "cfg@w=7.5", "classifier": "small", "state": "below_gate", "steps": 300, "n_seeds": 2, "seeds": [0, 1],
             "accuracy": m, "macro_f1": m, "minority_f1": m, "gate": gate,
             "vs": {"none": {"metric": "accuracy", "diff_mean": -0.03, "ci95": [-0.05, -0.01], "p": 0.01, "p_holm": None, "mde": None,
                             "verdict": "below gate"}}}]
    (run.path / "results.json").write_text(json.dumps({"study": "quick", "state": "done", "rows": rows}))
    run.set_status("done")
    at = _page(app, "app_pages/results.py")
    srows = _frame(at, "gate_tail_consistency").set_index("method")
    assert srows.loc["cfg@w=7.5", "state"] == "below_gate" and srows.loc["cfg@w=7.5", "gate"] == "✗"
    assert srows.loc["cfg@w=7.5", "gate_tail_consistency"] == pytest.approx(0.4) and srows.loc["none", "gate"] == ""
    assert srows.loc["cfg@w=7.5", "why"] == "below gate: tail consistency 0.400 < 0.8"
    assert srows.loc["cfg@w=7.5", "accuracy_mean"] == pytest.approx(0.8)  # its figures stay
    v = _frame(at, "verdict").to_dict("records")[0]
    assert v["verdict"].startswith("below gate: no verdict") and v["difference"] == pytest.approx(-0.03)
    assert any("below gate" in c.value and "Holm" in c.value for c in at.caption)


# ------------------------------------------------------------------------- jobs from buttons
def test_forms_do_not_submit_on_enter(app):
    at = _page(app, "app_pages/train.py")
    forms = [b for b in at.get("form")]
    assert len(forms) == 2 and all(not f.proto.form.enter_to_submit for f in forms)


def test_identical_submission_within_a_minute_asks_first(app, monkeypatch):
    import threading

    release = threading.Event()

    def slow_cfg(ctx):  # stays running until released, like a real training
        release.wait(30)

    monkeypatch.setitem(jobs.RUNNERS, "cfg", slow_cfg)
    at = _page(app, "app_pages/train.py")
    at.number_input(key="cfg_steps").set_value(9)
    _button(at, "Start CFG training").click().run()
    assert len(list_runs()) == 1
    _button(at, "Start CFG training").click().run()
    assert not at.exception and len(list_runs()) == 1  # not started: asked instead
    assert any("An identical cfg job" in w.value and "Start another copy anyway?" in w.value for w in at.warning)
    _button(at, "Don't start it").click().run()
    assert len(list_runs()) == 1 and not any("An identical" in w.value for w in at.warning)
    _button(at, "Start CFG training").click().run()
    _button(at, "Start anyway").click().run()
    assert len(list_runs()) == 2 and any("Started cfg job" in s.value for s in at.success)
    # a different configuration starts at once
    at.number_input(key="cfg_steps").set_value(10)
    _button(at, "Start CFG training").click().run()
    assert len(list_runs()) == 3
    release.set()
    _wait_all()


def test_train_form_remembers_values_across_pages(app, monkeypatch):
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    at = _page(app, "app_pages/train.py")
    at.number_input(key="cfg_steps").set_value(13)
    at.number_input(key="cfg_batch").set_value(16)
    _button(at, "Start CFG training").click().run()
    _wait_all()
    _page(at, "app_pages/dataset.py")
    _page(at, "app_pages/train.py")
    assert at.number_input(key="cfg_steps").value == 13 and at.number_input(key="cfg_batch").value == 16


# ------------------------------------------------------------------------------- workspace
def test_dataset_choice_lives_in_the_url_and_the_saved_workspace(app, tmp_path):
    at = app
    at.selectbox(key="ds_profile").set_value("linear").run()
    at.number_input(key="ds_ratio").set_value(20.0).run()
    assert (at.query_params["dataset"], at.query_params["profile"], at.query_params["ratio"]) == ("digits", "linear", "20")
    # the sidebar caption follows the change in the same run (it used to lag one behind)
    assert any("profile **linear**, ratio 20" in c.value for c in at.sidebar.caption)
    # a new tab without parameters starts from the last saved workspace
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    fresh.run()
    assert fresh.selectbox(key="ds_profile").value == "linear" and fresh.number_input(key="ds_ratio").value == 20.0
    # a reload / shared link: the URL wins for its tab, whatever the saved workspace says
    linked = AppTest.from_file(APP, default_timeout=TIMEOUT)
    linked.query_params["dataset"] = "digits"
    linked.query_params["profile"] = "step"
    linked.run()
    assert not linked.exception
    assert linked.selectbox(key="ds_profile").value == "step" and linked.session_state["data_cfg"]["profile"] == "step"
    _page(linked, "app_pages/train.py")
    assert "profile **step**" in _texts(linked)
    assert linked.query_params["profile"] == "step"  # written back after the page switch


def test_a_job_keeps_the_data_config_of_its_tab(app, monkeypatch):
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    other = AppTest.from_file(APP, default_timeout=TIMEOUT)
    other.run()
    other.selectbox(key="ds_profile").set_value("full").run()  # another tab changes the saved workspace
    at = _page(app, "app_pages/train.py")  # this tab still holds 'paper' in its own URL/session
    _button(at, "Start CFG training").click().run()
    _wait_all()
    assert list_runs()[0].config["data"]["profile"] == "paper"


# ------------------------------------------------------------------------------ validation
def test_zero_and_wrong_counts_get_page_words(app):
    at = app
    at.selectbox(key="ds_profile").set_value("custom").run()
    at.text_input(key="ds_counts_custom").set_value(",".join(["0"] * 10)).run()
    errs = [e.value for e in at.error]
    assert any("at least 1 image" in e and "Counts box" in e for e in errs), errs
    at.text_input(key="ds_counts_custom").set_value("5,5,5").run()
    errs = [e.value for e in at.error]
    assert any("needs 10 counts" in e and "the Counts box has 3" in e for e in errs), errs
    assert not any("--counts" in e for e in errs)


def test_bad_zip_error_names_the_users_file(app):
    at = app
    at.selectbox(key="ds_dataset").set_value("imagefolder").run()
    at.radio(key="ds_source_imagefolder").set_value("zip upload").run()
    at.get("file_uploader")[0].set_value(("fake.zip", b"PK\x03\x04 not really", "application/zip"))
    at.run()
    errs = [e.value for e in at.error]
    assert any("fake.zip is not a valid zip" in e for e in errs), errs


# ------------------------------------------------------------------------------ no magic
def test_no_bare_expression_statements_in_the_app():
    """Streamlit magic echoes any bare expression (it once printed a whole conditional and
    5,000 px of help text). Magic is off in .streamlit/config.toml, and the code stays clean
    too: every bare expression statement that is not a call (st.* calls render on purpose)
    or a docstring fails this test."""
    import ast

    root = Path(APP).parent
    files = [root / "app.py", *sorted((root / "app_pages").glob("*.py"))]
    bad = []
    for f in files:
        tree = ast.parse(f.read_text())
        docstrings = {id(n.body[0]) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Expr) and id(node) not in docstrings and not isinstance(node.value, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)):
                bad.append(f"{f.name}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not bad, "bare expressions (Streamlit magic would print them):\n" + "\n".join(bad)
    cfg = (root / ".streamlit" / "config.toml").read_text()
    assert "magicEnabled = false" in cfg


def test_the_magic_check_catches_the_old_compare_line():
    import ast

    src = "st.dataframe(diff) if not diff.empty else st.caption('same')\nst.write('ok')\n"
    exprs = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Expr) and not isinstance(n.value, ast.Call)]
    assert len(exprs) == 1 and isinstance(exprs[0].value, ast.IfExp)


def test_every_form_refuses_enter():
    """Pressing Enter in a form field must never start a job: every st.form in the app passes
    enter_to_submit=False (the Guidance form once did not)."""
    import ast

    root = Path(APP).parent
    forms = []
    for f in [root / "app.py", *sorted((root / "app_pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "form":
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("enter_to_submit"), ast.Constant) and kw["enter_to_submit"].value is False
                forms.append((f"{f.name}:{node.lineno}", ok))
    assert len(forms) >= 3, forms  # cfg, classifier, guidance
    assert all(ok for _, ok in forms), [name for name, ok in forms if not ok]
