import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from core.cli import main
from core.data import DataConfig, load_dataset, prepare
from core.errors import ConfigError, DataError
from tests.helpers import make_folder, write_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))


def test_digits_embedded_offline():
    ds = load_dataset(DataConfig())
    assert ds.classes == [str(i) for i in range(10)]
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.shape[1:] == (1, 16, 16)
    assert len(ds.train) + len(ds.test) == 1797
    # stratified: every class is in both splits in proportion
    # stratified 80/20 split, fixed seed: the same counts on every machine
    assert ds.train.counts() == [142, 146, 142, 146, 145, 145, 145, 143, 139, 144]
    assert ds.test.counts() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    assert (ds.train.provenance == "real").all()
    assert load_dataset(DataConfig(image_size=32)).train.images.shape[-1] == 32


def test_imagefolder_mixed_modes_sizes_and_formats(tmp_path):
    root = tmp_path / "ds"
    write_image(root / "a" / "1.png", size=(8, 8), mode="RGB")
    write_image(root / "a" / "2.jpg", size=(8, 8), mode="L")
    write_image(root / "a" / "3.webp", size=(12, 10), mode="RGB")
    write_image(root / "b" / "1.bmp", size=(8, 8), mode="RGB")
    write_image(root / "b" / "2.png", size=(8, 8), mode="RGBA")
    write_image(root / "b" / "3.png", size=(8, 8), mode="RGB")
    ds = load_dataset(DataConfig(dataset="imagefolder", data_dir=str(root), test_fraction=0.34))
    assert ds.classes == ["a", "b"]
    assert ds.image_size == 8 and ds.channels == 3  # most common size; any colour -> RGB
    assert len(ds.train) + len(ds.test) == 6 and ds.test.counts() == [1, 1]
    ds16 = load_dataset(DataConfig(dataset="imagefolder", data_dir=str(root), image_size=16, test_fraction=0.34))
    assert ds16.train.images.shape[-2:] == (16, 16)


def test_grayscale_folder_stays_one_channel(tmp_path):
    make_folder(tmp_path / "g", mode="L", per_class=4)
    assert load_dataset(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "g"))).channels == 1


def test_corrupt_and_non_image_files_are_skipped_and_listed(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=5)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "dog" / "notes.txt").write_text("hello")
    ds = load_dataset(DataConfig(dataset="imagefolder", data_dir=str(root)))
    skipped = dict(ds.skipped)
    assert any(p.endswith("broken.png") for p in skipped) and any(p.endswith("notes.txt") for p in skipped)
    assert len(ds.train) + len(ds.test) == 15


def test_whole_class_unreadable_is_an_error(tmp_path):
    root = make_folder(tmp_path / "ds", classes=("a", "b"), per_class=3)
    for f in (root / "b").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(DataError, match="Every image of class 'b'"):
        load_dataset(DataConfig(dataset="imagefolder", data_dir=str(root)))


def test_empty_class_and_missing_folder(tmp_path):
    root = make_folder(tmp_path / "ds", classes=("a", "b"), per_class=3)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="Class 'empty'.*no images"):
        load_dataset(DataConfig(dataset="imagefolder", data_dir=str(root)))
    with pytest.raises(DataError, match="not found"):
        load_dataset(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="Unknown dataset"):
        load_dataset(DataConfig(dataset="imagenet"))


def test_train_test_layout_and_class_mismatch(tmp_path):
    root = tmp_path / "tt"
    make_folder(root / "train", per_class=4)
    make_folder(root / "test", per_class=2)
    ds = load_dataset(DataConfig(dataset="imagefolder", data_dir=str(root)))
    assert ds.train.counts() == [4, 4, 4] and ds.test.counts() == [2, 2, 2]
    bad = tmp_path / "bad"
    make_folder(bad / "train", per_class=2)
    make_folder(bad / "test", classes=("cat", "dog"), per_class=2)
    with pytest.raises(DataError, match="missing in test: \\['emu'\\]"):
        load_dataset(DataConfig(dataset="imagefolder", data_dir=str(bad)))


def test_zip_upload_and_wrapper_folder(tmp_path):
    src = make_folder(tmp_path / "mydata", per_class=4)
    zpath = tmp_path / "mydata.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in src.rglob("*.png"):
            zf.write(f, f.relative_to(tmp_path))  # entries are mydata/<class>/x.png
    ds = load_dataset(DataConfig(dataset="imagefolder", data_dir=str(zpath)))
    assert ds.classes == ["cat", "dog", "emu"] and len(ds.train) + len(ds.test) == 12


@pytest.mark.parametrize("evil", ["../escape.png", "/abs/escape.png", "a/../../escape.png"])
def test_zip_slip_is_rejected_and_nothing_extracted(tmp_path, evil):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a/ok.png", b"x")
        zf.writestr(evil, b"x")
    with pytest.raises(DataError, match="outside the extraction folder"):
        load_dataset(DataConfig(dataset="imagefolder", data_dir=str(zpath)))
    assert not (tmp_path / "escape.png").exists()
    assert not list((tmp_path / "cache").rglob("ok.png"))


def test_corrupt_zip(tmp_path):
    zpath = tmp_path / "bad.zip"
    zpath.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        load_dataset(DataConfig(dataset="imagefolder", data_dir=str(zpath)))


def test_torchvision_offline_error_names_what_to_fetch(tmp_path):
    with pytest.raises(DataError) as exc:
        load_dataset(DataConfig(dataset="cifar10", data_dir=str(tmp_path / "tv")))
    msg = str(exc.value)
    assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "tv") in msg and "--data-dir" in msg


def test_cifar10_folder_loads_in_torchvision_order_and_caches(cifar_dir, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(ROOT / ".cache"))  # share the decode across runs
    cfg = DataConfig(dataset="cifar10", data_dir=str(cifar_dir), profile="paper")
    ds, train = prepare(cfg)
    assert ds.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert ds.train.images.shape == (50000, 3, 32, 32) and ds.test.counts() == [1000] * 10
    assert train.counts() == [500 * (i + 1) for i in range(10)]
    t = time.perf_counter()
    again = load_dataset(cfg)
    assert time.perf_counter() - t < 10  # cached (the <2 s target is measured in bench/)
    assert torch.equal(again.train.images[:50], ds.train.images[:50])


def test_cli_dataset_json(cifar_dir):
    out = subprocess.run(
        [sys.executable, "-m", "core", "dataset", "--dataset", "cifar10", "--data-dir", str(cifar_dir), "--profile", "paper", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "IMBALANCE_LAB_CACHE": str(ROOT / ".cache")},
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["train_counts"] == [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000]
    assert info["test_counts"] == [1000] * 10 and info["image_size"] == 32 and info["skipped"] == []
    assert info["classes"][0] == "airplane"


def test_cli_bad_input_exits_2_or_3_with_fix(tmp_path, capsys):
    # one real process (its exit status is main()'s return value: core/__main__.py); the other cases call
    # the same main() in this process, which saves a torch-importing interpreter start (~5 s) per case
    r = subprocess.run([sys.executable, "-m", "core", "dataset", "--profile", "exponential", "--ratio", "0.5"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "below 1" in r.stderr and "Fix:" in r.stderr and "Traceback" not in r.stderr

    def run(*a):
        rc = main(["dataset", *a])  # an exception main() does not turn into an exit status fails the test here
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(a, rc, out, err)

    r = run("--profile", "custom", "--counts", "1,2,3")
    assert r.returncode == 2 and "needs 10 counts" in r.stderr
    r = run("--profile", "custom", "--counts", ",".join(["9999"] * 10))
    assert r.returncode == 3 and "only" in r.stderr and "exist" in r.stderr  # the data cannot give it: a lab error
    r = run("--dataset", "imagefolder", "--data-dir", str(tmp_path / "missing"))
    assert r.returncode == 3 and "not found" in r.stderr  # a missing data folder: a lab error
    assert "Traceback" not in r.stderr
    h = run("--help")
    assert h.returncode == 0
    for flag in ("--ratio", "--counts", "--minority-order", "--data-seed", "--data-dir", "--profile"):
        assert flag in h.stdout
