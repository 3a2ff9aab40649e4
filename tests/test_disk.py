"""Uploads and the disk on a shared server (issue 28): per-identity upload folders, disk budgets
checked before writing, nothing left after a failed upload, LRU eviction that spares what a job
uses, one decoded copy per split however its fraction is spelled, and no downloads for users."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from core.serving import server as serving
from core.data import disk
from core.errors import DataError
from core.paths import cache_dir
from tests.helpers import make_folder, write_image
from tests.test_app_identity import APP, TIMEOUT, _signed_in, env  # noqa: F401  (env: the fixture)

MB = 1024**2


def _zip(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _entry(path, size: int, age: float):
    path.mkdir(parents=True)
    (path / "blob").write_bytes(b"\0" * size)
    os.utime(path, (age, age))
    return path


def test_make_room_evicts_the_least_recently_used_entries_not_in_use(tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(disk.USER_VAR, str(3 * MB / disk.GB))
    monkeypatch.setenv(disk.SERVER_VAR, str(10 * MB / disk.GB))
    me = serving.user_dir("alice")
    oldest = _entry(me / "uploads" / "a", MB, 100)
    busy = _entry(me / "zips" / "b", MB, 200)  # older than c, but a running job uses it
    newer = _entry(me / "uploads" / "c", MB, 300)
    other = _entry(serving.user_dir("bob") / "uploads" / "d", MB, 50)  # not alice's to evict for her own budget
    disk.make_room(2 * MB, me, in_use=[busy / "data.zip"])
    assert not oldest.exists() and busy.exists() and not newer.exists() and other.exists()
    with pytest.raises(DataError, match=rf"needs 3\.00 GB|{disk.USER_VAR}") as err:
        disk.make_room(3 * MB, me, in_use=[busy])
    assert disk.USER_VAR in str(err.value) and "nothing was written" in str(err.value)
    assert busy.exists()
    # the whole cache: bob's entry is evicted for it when needed
    monkeypatch.setenv(disk.USER_VAR, "1")
    disk.make_room(9 * MB, None, in_use=[busy])
    assert not other.exists() and busy.exists()


def test_upload_need_counts_what_the_zip_unpacks_to_and_discard_removes_both():
    bomb = _zip({f"z/{i}.png": b"\0" * 60_000 for i in range(50)})  # each entry under the ratio floor: no "zip bomb" refusal
    assert disk.upload_need(bomb) == len(bomb) + 50 * 60_000
    assert disk.upload_need(b"not a zip") == 9


def test_a_zero_filled_upload_past_the_disk_budget_is_refused_before_writing(env, monkeypatch):
    monkeypatch.setenv(disk.USER_VAR, str(1 * MB / disk.GB))
    bomb = _zip({f"z/c{i % 2}/{i}.png": b"\0" * 60_000 for i in range(40)})  # 2.4 MB unpacked from a few KB
    at = _signed_in("alice")
    at.selectbox(key="ds_dataset").set_value("imagefolder").run()
    at.radio(key="ds_source_imagefolder").set_value("zip upload").run()
    at.get("file_uploader")[0].upload("zeros.zip", bomb, "application/zip")
    at.run()
    assert not at.exception and any(disk.USER_VAR in e.value and "nothing was written" in e.value for e in at.error), [e.value for e in at.error]
    assert disk.folder_bytes(serving.user_dir("alice")) == 0


def test_an_upload_that_does_not_load_leaves_nothing_and_a_good_one_lands_in_its_owners_folder(env, tmp_path):
    png = write_image(tmp_path / "x.png").read_bytes()
    at = _signed_in("alice")
    at.selectbox(key="ds_dataset").set_value("imagefolder").run()
    at.radio(key="ds_source_imagefolder").set_value("zip upload").run()
    junk = _zip({"data/a/0.txt": b"no images here", "data/b/0.txt": b"nor here"})
    at.get("file_uploader")[0].upload("junk.zip", junk, "application/zip")
    at.run()
    assert not at.exception and at.error
    assert disk.folder_bytes(serving.user_dir("alice")) == 0 and not list(cache_dir().glob("zips/*"))
    good = _zip({f"data/{c}/{i}.png": png for c in ("a", "b") for i in range(4)})
    at.get("file_uploader")[0].set_value(("good.zip", good, "application/zip"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    data_dir = at.session_state["data_cfg"]["data_dir"]
    assert serving.inside_roots(data_dir, [serving.user_dir("alice") / "uploads"])
    assert list(serving.user_dir("alice").glob("zips/*/.extracted")) and not (cache_dir() / "zips").exists()


def test_a_shared_server_downloads_nothing_for_its_users(env, monkeypatch):
    target = env / "allowed" / "fresh-name"
    at = _signed_in("alice", dataset="cifar100", dir=str(target))
    assert any("does not download" in e.value and serving.DOWNLOADS_VAR in e.value for e in at.error), [e.value for e in at.error]
    assert not target.exists()


def test_one_decoded_copy_per_split_however_the_fraction_is_spelled(tmp_path, monkeypatch):
    from core.data.loading import DataConfig, load_dataset

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "imgs", classes=("a", "b"), per_class=10)
    for tf in (0.3, 0.1 + 0.2, float("0.3000")):
        ds = load_dataset(DataConfig(dataset="imagefolder", data_dir=str(root), test_fraction=tf))
        assert len(ds.test) == 6
    assert len(list((cache_dir() / "datasets").iterdir())) == 1


def test_discarding_an_upload_leaves_no_empty_folders_behind(tmp_path, monkeypatch):
    """Issue 28: after a refused upload its person's folder held empty uploads/ and zips/ folders."""
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    me = serving.user_dir("alice")
    up = me / "uploads" / "abc" / "x.zip"
    up.parent.mkdir(parents=True)
    up.write_bytes(b"zip")
    (me / "zips" / "abc").mkdir(parents=True)
    keep = serving.user_dir("bob") / "uploads" / "def"
    keep.mkdir(parents=True)
    disk.discard_upload(up)
    assert not me.exists() and keep.is_dir() and cache_dir().is_dir()
