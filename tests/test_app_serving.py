"""The app served to a class (issue 19), in AppTest: links outside the data roots, numbers out of
range, job limits, cancelling another session's job, the access token, per-session workspaces."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.serving import server as serving, workspace
from core.store.runs import list_runs
from tests.helpers import make_folder

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60


@pytest.fixture()
def env(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(serving.ROOTS_VAR, str(tmp_path / "allowed"))
    for var in (serving.TOKEN_VAR, serving.HOST_VAR, serving.SHARED_VAR, serving.PER_SESSION_VAR, serving.PER_SERVER_VAR, "IMBALANCE_LAB_MEMORY_BUDGET_GB"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "allowed").mkdir()
    return tmp_path


def _app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _all_text(at: AppTest) -> str:
    """Every string the page sent: the element protos, serialised (labels, captions, values)."""
    out = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def _button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[0]


def _blocking(monkeypatch, kinds=("cfg",)):
    release = threading.Event()

    def slow(ctx):  # a job that runs until released or cancelled
        while not release.is_set() and not ctx.should_stop():
            release.wait(0.02)

    for kind in kinds:
        monkeypatch.setitem(jobs.RUNNERS, kind, slow)
    yield release
    release.set()
    from app_pages._manager import manager

    for j in manager().active():
        manager().cancel(j.id)


@pytest.fixture()
def blocking(monkeypatch):
    yield from _blocking(monkeypatch)


# ------------------------------------------------------------------------------ data roots
def test_a_link_to_a_folder_outside_the_roots_shows_an_error_and_nothing_of_it(env):
    private = make_folder(env / "private", classes=("alpha_private_cls", "beta_private_cls"), per_class=3)
    (env / "allowed" / "sneaky").symlink_to(private)
    for link in (str(private), str(env / "allowed" / "sneaky"), f"{env}/allowed/../private"):
        at = _app(dataset="imagefolder", dir=link)
        assert any(serving.ROOTS_VAR in e.value and "outside" in e.value for e in at.error), [e.value for e in at.error]
        assert "private_cls" not in _all_text(at)
        assert not at.get("imgs") and not at.get("plotly_chart") and not at.metric
    # the same folder inside a root loads
    inside = make_folder(env / "allowed" / "ok", classes=("cls_a", "cls_b"), per_class=3)
    at = _app(dataset="imagefolder", dir=str(inside))
    assert not at.error and "cls_a" in _all_text(at)


def test_the_path_field_is_checked_too(env):
    private = make_folder(env / "private", classes=("alpha_private_cls", "beta_private_cls"), per_class=3)
    at = _app()
    at.selectbox(key="ds_dataset").set_value("imagefolder").run()
    at.text_input(key="ds_dir_imagefolder").set_value(str(private)).run()
    assert not at.exception and any(serving.ROOTS_VAR in e.value for e in at.error)
    assert "private_cls" not in _all_text(at)


def test_a_job_with_data_outside_the_roots_is_not_started(env, blocking):
    from app_pages._manager import manager

    at = _app()
    with pytest.raises(Exception, match=serving.ROOTS_VAR):
        manager().submit("cfg", {"data": {"dataset": "imagefolder", "data_dir": str(env / "private")}})
    assert list_runs() == [] and at is not None


# ------------------------------------------------------------------------------ bounds
def test_a_size_past_its_maximum_gives_messages_not_an_exception(env):
    at = _app(dataset="digits", size="8192")
    assert any("size=8192 is above its maximum" in w.value for w in at.warning), [w.value for w in at.warning]
    # clamped to 1024, which the memory estimate then refuses (1,797 images resized through float32: 8.77 GB)
    assert any("8.77 GB" in e.value and "memory budget" in e.value for e in at.error), [e.value for e in at.error]
    assert at.query_params["size"] == "1024" and at.number_input(key="ds_size").value == 1024
    assert not at.get("imgs")


def test_junk_and_huge_url_numbers_never_raise(env):
    at = _app(dataset="digits", profile="step", minority="7", ratio="1e400", seed="-3", order="sideways", counts="x,y")
    assert at.slider(key="ds_mfrac").value == 0.95 and at.number_input(key="ds_seed").value == 0
    assert any("minority=7" in w.value for w in at.warning)


def test_every_train_field_states_its_bound(env):
    at = _app()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    fields = [n for n in at.number_input if n.key and n.key.startswith(("cfg_", "cls_"))]
    assert len(fields) == 12  # CFG: steps, batch, preview steps, preview every, lr, seed, CBDM τ; classifier: steps, epochs, batch, lr, seed
    assert at.number_input(key="cls_steps").max == 1_000_000
    assert all("Allowed: from" in n.help for n in fields), [(n.key, n.help) for n in fields]
    assert at.number_input(key="cfg_batch").max == 1024


# ------------------------------------------------------------------------------ sessions apart
def test_past_the_session_limit_nothing_is_submitted(env, blocking, monkeypatch):
    monkeypatch.setenv(serving.PER_SESSION_VAR, "1")
    at = _app()
    at.switch_page("app_pages/train.py").run()
    _button(at, "Start CFG training").click().run()
    assert len(list_runs()) == 1
    at.number_input(key="cfg_steps").set_value(7)  # not the identical-job guard: a different config
    _button(at, "Start CFG training").click().run()
    assert not at.exception and len(list_runs()) == 1
    assert any("limit is 1" in e.value and serving.PER_SESSION_VAR in e.value for e in at.error), [e.value for e in at.error]


def test_another_sessions_job_cannot_be_cancelled_here(env, blocking):
    from app_pages._manager import manager

    at = _app()
    other = manager().submit("cfg", {"data": {"dataset": "digits"}, "steps": 5}, owner="someone-else")
    at.switch_page("app_pages/train.py").run()
    assert any("Started in another browser session" in c.value for c in at.caption)
    assert not [b for b in at.button if b.label == "Cancel"]
    with pytest.raises(Exception, match="another browser session"):
        manager().cancel(other.id, owner="test session id")
    assert other.active
    # this session's own job keeps its Cancel button
    _button(at, "Start CFG training").click().run()
    mine = next(j for j in manager().active() if j.owner == "test session id")
    assert mine.id != other.id and [b for b in at.button if b.label == "Cancel"]


def test_a_shared_server_keeps_the_workspace_per_session(env, monkeypatch):
    workspace.save(data={"dataset": "digits", "profile": "linear", "ratio": 33.0})
    before = workspace.path().read_text()
    monkeypatch.setenv(serving.HOST_VAR, "0.0.0.0")
    at = _app()
    assert at.selectbox(key="ds_profile").value == "paper"  # not the file's linear/33
    at.selectbox(key="ds_profile").set_value("full").run()
    assert at.session_state["data_cfg"]["profile"] == "full"
    assert workspace.path().read_text() == before  # neither read nor written
    monkeypatch.setenv(serving.HOST_VAR, "127.0.0.1")
    assert _app().selectbox(key="ds_profile").value == "linear"  # on a loopback server the file is shared, as before
    monkeypatch.setenv(serving.SHARED_VAR, "1")  # loopback behind a reverse proxy (python -m core app --shared)
    assert _app().selectbox(key="ds_profile").value == "paper"


# ------------------------------------------------------------------------------ token
def test_the_token_is_asked_once_before_any_page(env, monkeypatch):
    monkeypatch.setenv(serving.TOKEN_VAR, "s3cret")
    at = _app(dataset="digits", profile="linear")
    assert [t.value for t in at.title] == ["Imbalance Lab"] and not at.selectbox and not at.get("plotly_chart")
    at.text_input(key="lab_token").set_value("wrong")
    at.button[0].click().run()
    assert any("not this server's access token" in e.value for e in at.error) and not at.selectbox
    at.text_input(key="lab_token").set_value("s3cret")
    at.button[0].click().run()
    assert "Dataset" in [t.value for t in at.title] and at.selectbox(key="ds_profile").value == "linear"
    # the pages rewrite the URL; the session keeps its entry
    at.switch_page("app_pages/train.py").run()
    assert not at.exception and "Train" in [t.value for t in at.title]
    # a link may carry the token; it is taken once and removed from the URL
    linked = _app(token="s3cret")
    assert "Dataset" in [t.value for t in linked.title] and "token" not in linked.query_params


def test_refreshes_stretch_for_a_class_and_are_fast_only_for_a_sessions_own_preview(monkeypatch):
    from app_pages import _polling as c

    seen = c._sessions_seen()
    seen.clear()
    now = 1000.0
    assert c.crowd_factor(now) == 1  # outside a script run no session is noted
    seen.update({f"s{i}": now for i in range(3)})
    assert c.crowd_factor(now) == 2  # 3 sessions: past CROWD = 2
    seen.update({f"s{i}": now - 10 for i in range(8)})
    assert c.crowd_factor(now) == 4  # 8 sessions
    assert c.crowd_factor(now + c.SEEN_S + 11) == 1 and seen == {}  # tabs not seen for a minute are forgotten

    class FakeJob:
        def __init__(self, lane, owner):
            self.lane, self.owner = lane, owner

    class FakeManager:
        def __init__(self, active):
            self._active = active

        def active(self):
            return self._active

    monkeypatch.setattr(c, "session_id", lambda: "me")
    monkeypatch.setattr(c, "owner_key", lambda: "me")
    seen.clear()
    monkeypatch.setattr(c, "manager", lambda: FakeManager([FakeJob(jobs.INTERACTIVE_LANE, "someone else")]))
    assert c.poll_every() == c.POLL_S  # another session's preview does not make this tab poll every second
    monkeypatch.setattr(c, "manager", lambda: FakeManager([FakeJob(jobs.INTERACTIVE_LANE, "me")]))
    assert c.poll_every() == c.POLL_FAST_S
    seen.update({f"s{i}": time_now() for i in range(7)})  # 8 tabs with this one
    monkeypatch.setattr(c, "manager", lambda: FakeManager([FakeJob(jobs.TRAIN_LANE, "me")]))
    assert c.poll_every() == 4 * c.POLL_S and c.curve_every() == 4 * c.CURVE_EVERY_S
    seen.clear()


def time_now() -> float:
    import time

    return time.time()
