"""Hostile archives and images: zip bombs (declared size, ratio, entry count, lying headers)
and pixel-count decompression bombs, with kilobyte-sized limits so the tests stay small."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from core.data import archive
from core.data.archive import ZipLimits, extract_zip
from core.errors import DataError
from tests.helpers import make_folder, write_image


def _zip(path: Path, entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _nothing_extracted(cache: Path) -> bool:
    z = cache / "zips"
    return not z.exists() or not any(z.iterdir())


def test_declared_size_over_limit_is_refused_before_writing(tmp_path):
    # 3 entries of 4 KB random-ish bytes (barely compressible): 12 KB declared > 10 KB limit
    data = bytes(range(256)) * 16
    z = _zip(tmp_path / "big.zip", {f"d/a/{i}.bin": data for i in range(3)})
    with pytest.raises(DataError, match=r"big\.zip would expand to 12,288 bytes, more than the limit of 10,240 bytes"):
        extract_zip(z, tmp_path / "cache", ZipLimits(max_bytes=10_240))
    assert _nothing_extracted(tmp_path / "cache")


def test_absurd_ratio_is_refused(tmp_path):
    z = _zip(tmp_path / "bomb.zip", {"d/a/zeros.png": b"\0" * 200_000})  # deflates ~1000-fold
    with pytest.raises(DataError, match=r"zeros\.png' in bomb\.zip expands [\d,]+-fold \(limit 50\)"):
        extract_zip(z, tmp_path / "cache", ZipLimits(max_ratio=50, ratio_floor=1024))
    assert _nothing_extracted(tmp_path / "cache")


def test_too_many_entries_is_refused(tmp_path):
    z = _zip(tmp_path / "many.zip", {f"d/a/{i}.txt": b"x" for i in range(21)})
    with pytest.raises(DataError, match=r"many\.zip holds 21 entries, more than the limit of 20"):
        extract_zip(z, tmp_path / "cache", ZipLimits(max_entries=20))
    assert _nothing_extracted(tmp_path / "cache")


def test_bytes_are_counted_while_extracting_when_the_header_check_is_fooled(tmp_path, monkeypatch):
    # Pretend the central directory passed the checks (as a lying header would): the running
    # byte count must still stop extraction at the limit and leave nothing behind.
    z = _zip(tmp_path / "liar.zip", {"d/a/0.bin": b"\1" * 6000, "d/a/1.bin": b"\2" * 6000})
    monkeypatch.setattr(archive, "_check_entries", lambda *a, **k: None)
    with pytest.raises(DataError, match=r"liar\.zip expanded past the limit of 10,240 bytes while extracting"):
        extract_zip(z, tmp_path / "cache", ZipLimits(max_bytes=10_240))
    assert _nothing_extracted(tmp_path / "cache")


def test_understated_sizes_in_the_central_directory_are_refused(tmp_path):
    # A real lying header: the central directory says the 50 KB entry is 10 bytes.
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/a/0.png", b"\0" * 50_000)
    buf = bytearray(raw.getvalue())
    cd = buf.rfind(b"PK\x01\x02")
    struct.pack_into("<I", buf, cd + 24, 10)  # uncompressed size field of the central header
    z = tmp_path / "lying.zip"
    z.write_bytes(bytes(buf))
    with pytest.raises(DataError, match=r"lying\.zip"):
        extract_zip(z, tmp_path / "cache", ZipLimits(max_bytes=1000))
    assert _nothing_extracted(tmp_path / "cache")


def test_a_normal_zip_within_limits_extracts(tmp_path):
    png = write_image(tmp_path / "x.png").read_bytes()
    z = _zip(tmp_path / "ok.zip", {f"data/{c}/{i}.png": png for c in ("a", "b") for i in range(3)})
    root = extract_zip(z, tmp_path / "cache", ZipLimits(max_bytes=100_000, max_entries=10))
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]
    assert len(list(root.rglob("*.png"))) == 6


def test_the_cli_loader_applies_the_default_limits(tmp_path, monkeypatch):
    """load_dataset (CLI and app alike) goes through extract_zip with DEFAULT_LIMITS."""
    from core.data.loading import DataConfig, load_dataset

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(archive, "DEFAULT_LIMITS", ZipLimits(max_entries=3))
    z = _zip(tmp_path / "mine.zip", {f"d/a/{i}.png": b"x" for i in range(5)})
    with pytest.raises(DataError, match=r"mine\.zip holds 5 entries"):
        load_dataset(DataConfig(dataset="imagefolder", data_dir=str(z)))


def test_pixel_bomb_image_is_a_skipped_file_with_its_reason(tmp_path, monkeypatch):
    from core.data import imagefolder
    from core.data.loading import load_folder

    root = make_folder(tmp_path / "imgs", classes=("a", "b"), per_class=4)
    write_image(root / "a" / "bomb.png", size=(1200, 1000), mode="L", value=0)  # 1.2 M pixels, a few KB on disk
    monkeypatch.setattr(imagefolder, "MAX_PIXELS", 1_000_000)
    ds = load_folder(root, 8, 0.25)
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert "bomb.png" in reasons and "1200x1000 pixels is over the limit of 1,000,000" in reasons["bomb.png"]
    assert len(ds.train) + len(ds.test) == 8


def _patched(data: bytes, edits) -> bytes:
    """The zip with, in every local and central header, ``edits(buf, header_offset, is_central)`` applied."""
    buf = bytearray(data)
    for sig, central in ((b"PK\x03\x04", False), (b"PK\x01\x02", True)):
        at = buf.find(sig)
        while at >= 0:
            edits(buf, at, central)
            at = buf.find(sig, at + 4)
    return bytes(buf)


@pytest.mark.parametrize("what, edit, match", [
    ("encrypted", lambda b, at, c: b.__setitem__(at + (8 if c else 6), b[at + (8 if c else 6)] | 1), "is encrypted"),
    ("AES (method 99)", lambda b, at, c: b.__setitem__(at + (10 if c else 8), 99), "compression method 99"),
])
def test_entries_python_cannot_read_are_refused_before_writing(tmp_path, what, edit, match):
    """Issue 28: these raised RuntimeError / NotImplementedError through the Dataset page (an exception box)."""
    raw = _zip(tmp_path / "ok.zip", {"d/a/0.png": write_image(tmp_path / "x.png").read_bytes()}, zipfile.ZIP_STORED).read_bytes()
    z = tmp_path / "odd.zip"
    z.write_bytes(_patched(raw, edit))
    with pytest.raises(DataError, match=match):
        extract_zip(z, tmp_path / "cache")
    assert _nothing_extracted(tmp_path / "cache")


def test_an_entry_the_disk_cannot_hold_is_a_data_error_and_leaves_nothing(tmp_path):
    """A 300-character file name (past the file system's 255) and a file and a folder of one name:
    OSErrors while extracting, refused with what went wrong."""
    png = write_image(tmp_path / "x.png").read_bytes()
    for name, entries in [("long.zip", {"d/a/" + "n" * 300 + ".png": png}), ("clash.zip", {"d/a": b"x", "d/a/0.png": png})]:
        z = _zip(tmp_path / name, entries)
        with pytest.raises(DataError, match="could not be extracted"):
            extract_zip(z, tmp_path / "cache")
        assert _nothing_extracted(tmp_path / "cache")


def test_backslash_escapes_and_an_archive_without_files_are_refused_cleanly(tmp_path):
    """Issue 28's sweep: '..\\\\..\\\\x' (an escape on Windows) was taken; a zip with no entries raised
    FileNotFoundError through the page (the folder it renames was never made)."""
    png = write_image(tmp_path / "x.png").read_bytes()
    for bad in ("..\\..\\evil.png", "data/a/..\\..\\..\\evil.png"):
        z = _zip(tmp_path / "bs.zip", {"data/a/0.png": png, bad: png})
        with pytest.raises(DataError, match="points outside the extraction folder"):
            extract_zip(z, tmp_path / "cache")
        assert _nothing_extracted(tmp_path / "cache")
    root = extract_zip(_zip(tmp_path / "empty.zip", {}), tmp_path / "cache")
    assert root.is_dir() and not [p for p in root.iterdir() if not p.name.startswith(".")]  # only the .extracted mark
