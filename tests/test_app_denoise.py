"""AppTest for the Guidance page's denoising view: a real tiny CFG checkpoint, the real
'trajectory' job (interactive lane), then scrubbing the saved steps without recomputing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.store.runs import list_runs
from tests.helpers import cfg_run, tiny_cfg_checkpoint

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture()
def app(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[0]


def _wait(run_id: str, timeout: float = 60) -> None:
    from app_pages._manager import manager

    job = manager().wait(run_id, timeout)
    assert job.state == "done", job.summary()


def test_denoise_tab_computes_once_then_scrubs(app, runs_root):
    model = tiny_cfg_checkpoint(cfg_run(runs_root, "tiny", "done", 40, 40, checkpoint=False))
    at = app.switch_page("app_pages/guidance.py").run()
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Sweep over w", "Denoising, step by step"]
    assert at.selectbox(key="dn_model").value == model.id
    at.text_input(key="dn_ws").set_value("1")
    _button(at, "Compute the trajectory").click().run()
    assert any("compares 2 or 3 values of w; you gave 1" in e.value for e in at.error)
    assert not [r for r in list_runs() if r.kind == "trajectory"]

    at.text_input(key="dn_ws").set_value("0, 2, 7.5")
    at.number_input(key="dn_seed").set_value(4)
    at.number_input(key="dn_steps").set_value(5)
    _button(at, "Compute the trajectory").click().run()
    runs = [r for r in list_runs() if r.kind == "trajectory"]
    assert len(runs) == 1
    run = runs[0]
    assert run.config["ws"] == [0.0, 2.0, 7.5] and run.config["seed"] == 4 and run.config["steps"] == 5 and run.config["cfg_run"] == model.id
    from app_pages._manager import manager

    assert manager().get(run.id).lane == "interactive"
    _wait(run.id)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    npz = run.path / "trajectory.npz"
    stamp = npz.stat().st_mtime_ns
    slider = at.slider(key=f"dn_step_{run.id}")
    assert (slider.min, slider.max, slider.value) == (1, 5, 5)
    assert any("step 5 of 5" in m.value for m in at.markdown)
    images = at.get("image")
    assert [len(i.proto.imgs) for i in images] == [2, 3] * 3  # per w: [x_t, x̂₀] and [ε_c, ε_u, ε̃]
    assert [i.caption for i in images[0].proto.imgs] == ["x_t", "x̂₀ (predicted clean image)"]
    assert [m.value for m in at.markdown if m.value.startswith("w = ")] == ["w = **0** · guidance_scale 1", "w = **2** · guidance_scale 3",
                                                                            "w = **7.5** · guidance_scale 8.5"]
    slider.set_value(2).run()
    assert not at.exception
    assert any("step 2 of 5" in m.value for m in at.markdown)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the guidance-norm chart, and the animation (Play) in its expander
    play = json.loads(charts[1].proto.spec)
    assert len(play["frames"]) == 5 and len(play["data"]) == 6 and play["layout"]["updatemenus"][0]["buttons"][0]["label"] == "▶ Play"
    spec = json.loads(charts[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["w = 0 (scale 1)", "w = 2 (scale 3)", "w = 7.5 (scale 8.5)"]
    assert spec["data"][0]["y"] == [0.0] * 5 or all(v == 0 for v in _decode(spec["data"][0]["y"]))  # w = 0: no guidance term
    assert spec["layout"]["shapes"][0]["x0"] == 2  # the marker follows the slider
    # scrubbing only reads: the trajectory was not recomputed, and no other job was started
    time.sleep(0.05)
    assert npz.stat().st_mtime_ns == stamp and len([r for r in list_runs() if r.kind == "trajectory"]) == 1


def _decode(y):
    """plotly may ship a numpy array as {'dtype', 'bdata'} (base64)."""
    if isinstance(y, list):
        return y
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()
