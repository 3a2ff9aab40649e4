"""core.serving.identity (issue 28): the teacher's tokens file, the signed cookie, the rate limit; and the
job manager's owner rules (resume only by the owner, never transferring the run)."""

from __future__ import annotations

import threading

import pytest

from core.serving import identity
from core.errors import ConfigError
from core.jobs import JobManager
from core.store.runs import Run

GOOD = '[alice]\ntoken = "alice-token-0123"\n\n[ms-l]\ntoken = "teacher-token-xyz"\nteacher = true\n'


def test_the_tokens_file_is_read_and_every_mistake_named():
    users = identity.parse_users(GOOD)
    assert users["alice"] == identity.User("alice", "alice-token-0123", False) and users["ms-l"].teacher
    for text, why in [("[alice]\ntoken = \"short\"\n", "at least 12"),
                      ('[a]\ntoken = "same-token-00000"\n[b]\ntoken = "same-token-00000"\n', "same token"),
                      ('["../x"]\ntoken = "long-enough-token"\n', "is not 1-40"),
                      ('[a]\ntoken = "long-enough-token"\nadmin = true\n', "only token"),
                      ('[a]\ntoken = "long-enough-token"\nteacher = "yes"\n', "not true or false"),
                      ("", "names nobody"), ("[a", "not valid TOML")]:
        with pytest.raises(ConfigError, match=why):
            identity.parse_users(text)


def test_a_token_matches_its_owner_only():
    users = identity.parse_users(GOOD)
    assert identity.match_token("alice-token-0123", users).name == "alice"
    assert identity.match_token("teacher-token-xyz", users).name == "ms-l"
    for wrong in ("", None, "alice-token-012", "alice-token-01234", "ALICE-TOKEN-0123"):
        assert identity.match_token(wrong, users) is None


def test_the_cookie_is_signed_with_the_persons_token_and_expires():
    users = identity.parse_users(GOOD)
    cookie = identity.issue_cookie(users["alice"], now=1_000_000)
    name, issued, sig = cookie.split(".")
    assert (name, issued, len(sig)) == ("alice", "1000000", 64)
    assert identity.verify_cookie(cookie, users, now=1_000_000 + 3600).name == "alice"
    assert identity.verify_cookie(cookie, users, now=1_000_000 + identity.COOKIE_DAYS * 86400 + 1) is None  # expired
    assert identity.verify_cookie(cookie, users, now=999_000) is None  # from the future
    assert identity.verify_cookie(f"ms-l.{issued}.{sig}", users, now=1_000_100) is None  # another name
    assert identity.verify_cookie(cookie.replace(sig[:4], "0000" if sig[:4] != "0000" else "1111"), users, now=1_000_100) is None
    for junk in ("", "alice", "alice.x.y", "..", None):
        assert identity.verify_cookie(junk, users, now=1_000_100) is None
    rotated = identity.parse_users(GOOD.replace("alice-token-0123", "alice-token-NEW1"))
    assert identity.verify_cookie(cookie, rotated, now=1_000_100) is None  # a new token ends the old cookies


def test_wrong_attempts_are_limited_per_client():
    lim = identity.RateLimiter(max_failures=3, window_s=60)
    for t in (0, 1, 2):
        assert lim.wait_s("a", now=t) == 0
        lim.failed("a", now=t)
    assert lim.wait_s("a", now=3) == pytest.approx(59)  # 60 s after the last failure
    assert lim.wait_s("b", now=3) == 0  # another client is not held
    assert lim.wait_s("a", now=61) == 0  # the first failure has left the window
    lim.succeeded("a")
    assert lim.wait_s("a", now=4) == 0


def test_load_users_reads_the_file_and_rereads_it_when_it_changes(tmp_path):
    f = tmp_path / "users.toml"
    f.write_text(GOOD)
    env = {identity.USERS_VAR: str(f)}
    assert set(identity.load_users(env)) == {"alice", "ms-l"}
    f.write_text('[bob]\ntoken = "bob-token-456789"\n')
    import os

    os.utime(f, (1, 1))
    assert set(identity.load_users(env)) == {"bob"}
    assert identity.load_users({}) is None
    with pytest.raises(ConfigError, match="cannot be read"):
        identity.load_users({identity.USERS_VAR: str(tmp_path / "missing.toml")})


def test_resume_is_for_the_owner_and_keeps_the_owner(tmp_path):
    release = threading.Event()

    def slow(ctx):
        while not release.is_set() and not ctx.should_stop():
            release.wait(0.02)

    mgr = JobManager(root=tmp_path / "runs", devices=["cpu"], runners={"cfg": slow})
    try:
        job = mgr.submit("cfg", {"steps": 3}, owner="alice")
        assert Run(job.run.path).owner == "alice"
        with pytest.raises(ConfigError, match="someone else"):
            mgr.cancel(job.id, owner="bob")
        assert mgr.cancel(job.id, owner="alice")
        mgr.wait(job.id, timeout=30)
        with pytest.raises(ConfigError, match="only its owner can resume"):
            mgr.resume(job.id, owner="bob")
        again = mgr.resume(job.id, owner="alice")
        assert again.owner == "alice"
        mgr.cancel(again.id, owner="alice")
        mgr.wait(again.id, timeout=30)
        cli = mgr.resume(job.id)  # the command line (no owner) may resume any run, as before
        assert cli.active
        release.set()
        mgr.wait(cli.id, timeout=30)
        assert Run(job.run.path).owner == "alice"  # still hers
    finally:
        release.set()
        mgr.shutdown()
