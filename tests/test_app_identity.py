"""A server a class shares (issue 28), in AppTest: per-person tokens from the teacher's file, a
signed cookie that keeps a person signed in across tabs, owner-only cancel and resume on every
page, each person seeing only their own runs, studies and uploads, a read-only teacher, no token
in the URL, a rate limit on wrong tokens, and the Train page drawing each run's panel once."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.serving import identity, server as serving
from core import jobs
from core.errors import ConfigError
from core.store.runs import Run, list_runs
from tests.helpers import make_folder
from tests.test_app_serving import _all_text, _blocking, _button

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60
TOKENS = {"alice": "alice-token-0123", "bob": "bob-token-456789", "teach": "teacher-token-xyz"}


@pytest.fixture()
def env(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(serving.ROOTS_VAR, str(tmp_path / "allowed"))
    for var in (serving.TOKEN_VAR, serving.HOST_VAR, serving.PER_SESSION_VAR, serving.PER_SERVER_VAR, "IMBALANCE_LAB_MEMORY_BUDGET_GB"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "allowed").mkdir()
    users = tmp_path / "users.toml"
    users.write_text("".join(f'[{n}]\ntoken = "{t}"\n' + ("teacher = true\n" if n == "teach" else "") for n, t in TOKENS.items()))
    monkeypatch.setenv(identity.USERS_VAR, str(users))
    monkeypatch.setenv(serving.SHARED_VAR, "1")
    from app_pages import _identity

    _identity._limiter.clear()
    return tmp_path


@pytest.fixture()
def blocking(monkeypatch):
    yield from _blocking(monkeypatch, ("cfg", "study"))


def _signed_in(who: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.text_input(key="lab_token").set_value(TOKENS[who])
    at.button(key="lab_token_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"Signed in as **{who}**" in c.value for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
    return at


def _start_training(at: AppTest) -> Run:
    before = {r.id for r in list_runs()}
    at.switch_page("app_pages/train.py").run()
    _button(at, "Start CFG training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (new,) = [r for r in list_runs() if r.id not in before]
    return new


def test_each_person_sees_and_changes_only_their_own_runs_and_the_teacher_reads_all(env, blocking):
    from app_pages._manager import manager

    alice = _signed_in("alice")
    run = _start_training(alice)
    assert run.owner == "alice" and manager().get(run.id).owner == "alice"
    assert [b for b in alice.button if b.label == "Cancel"]  # her own job: her Cancel button

    bob = _signed_in("bob")
    for page in ("app_pages/train.py", "app_pages/results.py"):
        bob.switch_page(page).run()
        assert not bob.exception and run.id not in _all_text(bob), page
    assert not [b for b in bob.button if b.label == "Cancel"]
    with pytest.raises(ConfigError, match="someone else"):
        manager().cancel(run.id, owner="bob")
    assert manager().get(run.id).active

    teach = _signed_in("teach")
    teach.switch_page("app_pages/train.py").run()
    assert run.id in _all_text(teach) and not [b for b in teach.button if b.label == "Cancel"]
    assert any("only its owner can cancel" in c.value for c in teach.caption)

    # alice cancels; neither bob nor the teacher may resume it, and her resume keeps it hers
    alice.switch_page("app_pages/train.py").run()
    _button(alice, "Cancel").click().run()
    manager().wait(run.id, timeout=60)
    for who in ("bob", "teach"):
        with pytest.raises(ConfigError, match="only its owner can resume"):
            manager().resume(run.id, owner=who)
    teach.switch_page("app_pages/train.py").run()
    assert not [b for b in teach.button if b.label == "Resume"]
    assert any("only its owner can resume" in c.value for c in teach.caption), [c.value for c in teach.caption]
    job = manager().resume(run.id, owner="alice")
    assert job.owner == "alice" and Run(run.path).owner == "alice"


def test_the_study_page_cancels_and_resumes_only_the_owners_study(env, blocking):
    from app_pages._manager import manager
    from core.study.config import KIND
    from core.study.presets import preset

    other = manager().submit(KIND, preset("quick").to_dict(), name="quick", owner="alice")
    teach = _signed_in("teach")
    teach.switch_page("app_pages/study.py").run()
    assert not teach.exception and other.id in _all_text(teach)
    assert not [b for b in teach.button if b.label in ("Cancel study", "Resume study")]
    assert any("only its owner can cancel" in c.value for c in teach.caption)
    bob = _signed_in("bob")
    bob.switch_page("app_pages/study.py").run()
    assert not bob.exception and other.id not in _all_text(bob)
    alice = _signed_in("alice")
    alice.switch_page("app_pages/study.py").run()
    _button(alice, "Cancel study").click().run()
    assert manager().wait(other.id, timeout=60).state == "cancelled"


def test_a_signed_cookie_keeps_a_person_signed_in_in_a_new_tab(env, monkeypatch):
    from app_pages import _identity

    alice = _signed_in("alice")
    cookie = alice.session_state[_identity.COOKIE_SET]
    assert any(cookie in str(h.proto) for h in alice.get("html"))  # the page sets it with a script
    users = identity.load_users()
    assert identity.verify_cookie(cookie, users).name == "alice"

    monkeypatch.setattr(_identity, "client_cookies", lambda: {identity.COOKIE: cookie})
    tab = AppTest.from_file(APP, default_timeout=TIMEOUT)
    tab.run()  # no token typed: the cookie signs it in
    assert not tab.exception and "Dataset" in [t.value for t in tab.title]
    assert any("Signed in as **alice**" in c.value for c in tab.sidebar.caption)

    name, issued, sig = cookie.split(".")
    for forged in (f"bob.{issued}.{sig}", f"{name}.{int(issued) + 1}.{sig}", f"{name}.{issued}.{'0' * 64}"):
        monkeypatch.setattr(_identity, "client_cookies", lambda f=forged: {identity.COOKIE: f})
        tab = AppTest.from_file(APP, default_timeout=TIMEOUT)
        tab.run()
        assert [t.value for t in tab.title] == ["Imbalance Lab"] and tab.text_input(key="lab_token"), forged


def test_a_token_in_the_url_is_refused_on_a_shared_server(env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["token"] = TOKENS["alice"]
    at.run()
    assert not at.exception and [t.value for t in at.title] == ["Imbalance Lab"]
    assert any("?token=" in e.value and "refused" in e.value for e in at.error), [e.value for e in at.error]
    assert "token" not in at.query_params and at.text_input(key="lab_token")


def test_wrong_tokens_are_rate_limited_per_client(env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    for i in range(identity.MAX_FAILURES):
        at.text_input(key="lab_token").set_value(f"wrong-guess-{i:04d}")
        at.button(key="lab_token_go").click().run()
        assert any("not this server's access token" in e.value for e in at.error)
    at.text_input(key="lab_token").set_value(TOKENS["alice"])  # the right one, too soon
    at.button(key="lab_token_go").click().run()
    assert any("Too many wrong tokens" in e.value for e in at.error), [e.value for e in at.error]
    assert [t.value for t in at.title] == ["Imbalance Lab"]


def test_another_persons_upload_folder_and_the_cache_are_no_data_roots(env):
    from core.paths import cache_dir

    mine = make_folder(serving.user_dir("alice") / "zips" / "abc", classes=("alice_private_a", "alice_private_b"), per_class=3)
    (cache_dir() / "zips").mkdir(parents=True)
    bob = _signed_in("bob", dataset="imagefolder", dir=str(mine))
    assert any("outside your own uploads" in e.value for e in bob.error), [e.value for e in bob.error]
    assert "alice_private" not in _all_text(bob)
    bob = _signed_in("bob", dataset="imagefolder", dir=str(cache_dir() / "zips"))
    assert any("outside your own uploads" in e.value for e in bob.error)
    alice = _signed_in("alice", dataset="imagefolder", dir=str(mine))
    assert not alice.error and "alice_private_a" in _all_text(alice)
    teach = _signed_in("teach", dataset="imagefolder", dir=str(mine))  # the teacher reads everyone's
    assert not teach.error and "alice_private_a" in _all_text(teach)


def test_the_train_page_draws_a_run_once_when_the_disk_runs_ahead_of_the_manager(env, blocking, monkeypatch):
    """The race of issue 28: status.json already says "done" (JobStore.finish writes it first)
    while the manager still holds the job running. The page used to read the disk twice and draw
    the run's panel twice: "multiple elements with the same key train-cancel-…"."""
    from app_pages import _jobs

    at = _signed_in("alice")
    run = _start_training(at)
    real = _jobs.job_panel
    calls = []

    def panel_then_disk_ends(rid, key, **kw):  # the job ends on disk between two looks of one page run
        out = real(rid, key, **kw)
        calls.append((rid, key))
        Run(run.path).set_status("done")
        return out

    monkeypatch.setattr(_jobs, "job_panel", panel_then_disk_ends)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls.count((run.id, "train")) == 1, calls
