"""Hostile uploads, built on the fly (issue 28): study TOML files and dataset zips a student could send.

Each case is a ``Case(label, name, data, refuse)``: what the uploader receives (file name and bytes)
and whether the server must refuse it (``True``), must take it (``False``: a valid file, or one
whose ``device`` is ignored with a note) or may do either (``None``). tests/test_upload_sweep.py drives them through the Study and Dataset pages;
bench/input_sweep.py runs every case, the tests a fixed subset.

* **Study files**: every key of every table of ``core.settings.bounds.CONFIG_BOUNDS`` (the per-classifier
  overrides included) set above and below its range, to huge numbers, NaN and the infinities, and
  to the wrong type; unknown keys and tables; settings in range that together pass the server's
  budgets; data folders and SD models outside the roots; ``device`` and ``cpu_lanes``; deeply
  nested and huge files; names that are paths; bytes that are not TOML.
* **Archives**: zip bombs of many small zero-filled files, entries that escape the folder
  (``..``, absolute, drive letters, backslashes), symbolic links, corrupt and truncated zips,
  tar and gzip files named ``.zip``, encrypted or unknown-compression entries, non-images,
  images whose headers declare huge pixel counts in tiny files, empty classes, too-long names.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import tarfile
import zipfile
import zlib
from dataclasses import dataclass

from core.settings.bounds import CONFIG_BOUNDS

ESCAPE = "i28-sweep-escape"  # file name every escaping entry or path uses: it must appear nowhere


@dataclass(frozen=True)
class Case:
    label: str
    name: str
    data: bytes
    refuse: bool | None  # True: must be refused; False: must be taken; None: either


# ------------------------------------------------------------------------------ TOML text
def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\0", "\\u0000").replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else _value(k)


def to_toml(d: dict, prefix: str = "") -> str:
    """``d`` as TOML: scalars first, then one [table] per nested dict (enough for study files)."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    out = ("\n".join(lines) + "\n") if lines else ""
    for k, v in d.items():
        if isinstance(v, dict):
            name = f"{prefix}.{_key(k)}" if prefix else _key(k)
            out += f"\n[{name}]\n" + to_toml(v, name)
    return out


# a small valid study (quick.toml's shape, minutes not hours); every case changes one thing of it
BASE = {"name": "sweep", "methods": ["none", "oversample", "mixup"], "cfg_ws": [0.1], "classifiers": ["small"], "seeds": [0],
        "data": {"dataset": "digits", "image_size": 8, "profile": "exponential", "ratio": 10.0},
        "classifier": {"steps": 20, "batch_size": 16}, "cfg_train": {"preset": "tiny", "steps": 20, "batch_size": 16},
        "cfg_sample": {"sampler": "dpm", "steps": 4}, "method_params": {"mixup": {"lam": 0.6}}, "gate": {"precision": 0.5}}


def _with(path: str, value) -> dict:
    """BASE with the dotted ``path`` set to ``value`` (tables created as needed)."""
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    d["method_params"] = {k: dict(v) for k, v in BASE["method_params"].items()}
    *tables, key = path.split(".")
    cur = d
    for t in tables:
        cur = cur.setdefault(t, {})
    cur[key] = value
    return d


LIST_KEYS = {("data", "counts"), ("study", "seeds"), ("study", "cfg_ws"), ("cfg_sample", "w_per_class")}


def _out_of_range(b) -> list[tuple[str, object]]:
    """Values outside a Bound: above, below, huge, NaN, the infinities, and the wrong types."""
    hi = int(b.hi) + 1 if b.integer else b.hi * 2 + 1
    lo = int(b.lo) - 1 if b.integer else b.lo - 1.0
    return [("above", hi), ("below", lo), ("huge", 2**63 - 1 if b.integer else 1e308), ("nan", math.nan), ("inf", math.inf),
            ("-inf", -math.inf), ("text", "12"), ("table", {"x": 1}), ("bool", True)]


def study_cases() -> list[Case]:
    cases: list[Case] = []

    def add(label: str, data: dict | str | bytes, refuse: bool | None = True, name: str = "study.toml") -> None:
        raw = data if isinstance(data, bytes) else (data if isinstance(data, str) else to_toml(data)).encode()
        cases.append(Case(label, name, raw, refuse))

    add("valid base study", BASE, False)
    # method_params.cfg is cfg_sample's table (core.settings.bounds: a study samples its cfg fills with [cfg_sample])
    tables = [(t, t) for t in CONFIG_BOUNDS if t != "method_params.cfg"] + [("classifier", "classifier_overrides.resnet18")]
    for table, where in tables:
        for key, b in CONFIG_BOUNDS[table].items():
            for what, v in _out_of_range(b):
                path = key if table == "study" else f"{where}.{key}"
                listed = (table, key) in LIST_KEYS and not isinstance(v, dict)
                add(f"{where}.{key} {what}", _with(path, [v] if listed else v))
    # in range alone, past the server's budgets together (core.serving.admission, core.study.start.BOUNDS)
    add("memory: 1024 px x batch 1024 x 64 lanes", _with("cfg_train.batch_size", 1024) | {
        "data": {"dataset": "digits", "image_size": 1024}, "classifier": {"batch_size": 1024, "steps": 20}, "cpu_lanes": 64})
    add("compute: cfg steps 1,000,000", _with("cfg_train.steps", 1_000_000) | {"methods": ["none", "cfg"]})
    add("compute: classifier steps 1,000,000 x 10 seeds", _with("classifier.steps", 1_000_000) | {"seeds": list(range(10))})
    add("compute: override steps 1,000,000", _with("classifier_overrides.small", {"steps": 1_000_000}))
    add("compute: 1000 epochs", _with("classifier", {"epochs": 1000, "batch_size": 1}) | {"budget": "epochs"})
    add("target 50,000 per class x image 1024", _with("target", 50_000) | {"data": {"dataset": "digits", "image_size": 1024}})
    add("20 guidance weights", _with("cfg_ws", [float(i) for i in range(20)]) | {"methods": ["none", "cfg"]})
    # unknown keys and tables, types of whole tables
    for path, v in [("seed", 0), ("methdos", ["none"]), ("executor", "ray"), ("devices", ["cuda:0"]), ("lanes", 8),
                    ("data.data_dirr", "/etc"), ("classifier.stepz", 10), ("cfg_train.bach_size", 8), ("cfg_sample.w", 3.0),
                    ("gate.precison", 0.1), ("method_params.gan", {"x": 1}), ("classifier_overrides.vit", {"steps": 1}),
                    ("metrics.extra", 1), ("data", "digits"), ("classifier", 5), ("cfg_train", [1, 2]), ("method_params", "mixup"),
                    ("classifier_overrides", 3), ("gate", "off"), ("methods", "none"), ("seeds", "0"), ("seeds", [0.5]),
                    ("seeds", [True]), ("seeds", []), ("seeds", [0, 0]), ("methods", []), ("methods", ["none"] * 200),
                    ("classifiers", ["resnet1000"]), ("classifiers", ["small"] * 50), ("budget", "forever"),
                    ("extractor", "../../etc/passwd"), ("data.dataset", "../../etc"), ("data.profile", "x" * 5000),
                    ("calibration_per_class", -1), ("converged_gain_minority", math.nan),
                    ("name", 123), ("compare_to", [1, 2])]:
        add(f"bad key or type: {path} = {str(v)[:30]}", _with(path, v))
    # odd but harmless: may be taken (a valid study; calibration is capped at half the dropped images; counts unused by this profile)
    for path, v in [("cfg_ws", []), ("calibration_per_class", 2**63 - 1), ("data.counts", [1] * 20000)]:
        add(f"odd value: {path} = {str(v)[:30]}", _with(path, v), None)
    # paths outside the roots (data folders, SD models)
    for p in ["/", "/etc", "/proc/self", "~", "..", "../../../..", "/tmp", f"/tmp/{ESCAPE}", "/dev/zero", "\0/etc", "a" * 5000,
              "file:///etc", "/work/shared/data/cifar10"]:
        add(f"data_dir outside the roots: {p[:30]!r}", _with("data", {"dataset": "imagefolder", "data_dir": p}))
    for p in ["/", "/etc", "../../../../tmp", f"/tmp/{ESCAPE}", "~/.cache/huggingface", "./", "some-org/unknown-model",
              "http://example.com/model", "\\\\server\\share"]:
        add(f"sd model outside the roots: {p[:30]!r}", _with("method_params.sd", {"model": p}) | {"methods": ["none", "sd"], "sd_on_cpu": True})
    # the executor is the server's: ignored with a note, never refused
    for v in ["cpu", "cuda", "cuda:7", "mps", "meta", "; rm -rf /"]:
        add(f"device = {v!r} (ignored)", _with("device", v), False)
    for v in [1, 2, 64]:
        add(f"cpu_lanes = {v} (ignored)", _with("cpu_lanes", v), False)
    # names that are paths (the study's folder name comes from it)
    for v in [f"../../{ESCAPE}", f"/tmp/{ESCAPE}", "a/b/c", "..", ".", "", "x" * 3000, "\u202e\u0000nul", "con", "名前"]:
        add(f"name = {v[:20]!r}", _with("name", v), None)
    # deeply nested, huge, not TOML at all
    for depth in (50, 500, 5000, 20000):
        add(f"nested arrays, depth {depth}", "x = " + "[" * depth + "]" * depth + "\n")
        add(f"nested inline tables, depth {depth}", "x = " + "{a = " * depth + "1" + "}" * depth + "\n")
        add(f"dotted table depth {depth}", "[" + ".".join(["a"] * depth) + "]\nb = 1\n")
    add("70 KB of comments (past the 64 KB a study file may have)", "#" + "x" * 70_000 + "\n" + to_toml(BASE))
    add("10 MB of spaces", b" " * 10_000_000 + to_toml(BASE).encode())
    add("4000 unknown keys", "".join(f"k{i} = {i}\n" for i in range(4000)))
    add("a 60 KB name (cut to 40 characters in the folder name)", _with("name", "n" * 60_000), None)
    add("empty file", b"", None)
    add("not UTF-8", b"\xff\xfe\x00name = 1\n\x80\x81")
    add("UTF-8 BOM", b"\xef\xbb\xbf" + to_toml(BASE).encode())
    add("binary junk", bytes(range(256)) * 50)
    add("a zip named .toml", zip_of({"study.toml": to_toml(BASE).encode()}))
    add("duplicate keys", to_toml(BASE) + "\nname = \"again\"\n")
    add("TOML syntax error", "name = \n[data\n")
    add("integer overflow literal", "seeds = [99999999999999999999999]\n")
    add("a date as a number", to_toml(BASE).replace("ratio = 10.0", "ratio = 1979-05-27"))
    return cases


# ------------------------------------------------------------------------------ archives
def zip_of(entries: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            if isinstance(data, zipfile.ZipInfo):  # (info, bytes) pairs are passed as a tuple below
                raise TypeError
            if isinstance(data, tuple):
                info, payload = data
                zf.writestr(info, payload)
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, bit_depth: int = 8, color: int = 0, body: bytes | None = None) -> bytes:
    """A PNG whose header declares width × height; its data is ``body`` (default: a few zero rows, truncated)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    if body is None:
        body = zlib.compress(b"\0" * min(4096, 1 + width))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def png_full(width: int, height: int) -> bytes:
    """A complete 1-bit PNG of zeros, width × height, compressed row by row (tiny for its pixel count)."""
    comp = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return png(width, height, 1, 0, body)


def small_png(seed: int = 0) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (8, 8), (seed * 37 % 256, 90, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(width: int, height: int) -> bytes:
    """A small JPEG whose SOF header is patched to declare width × height."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    b = bytearray(buf.getvalue())
    i = b.find(b"\xff\xc0")
    b[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(b)


def _bmp(width: int, height: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return header + dib + b"\0" * 16


def _gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\0\0\0\0" + struct.pack("<HH", width, height) + b"\0\x02\x02L\x01\0;"


def _tar(entries: dict, mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)
    info.create_system = 3
    return info, target.encode()


def archive_cases() -> list[Case]:
    """Every case refused, except a good zip (``False``) that shows the sweep can tell them apart, and two that may load."""
    good = {f"data/{c}/{i}.png": small_png(i) for c in ("a", "b") for i in range(4)}
    cases: list[Case] = [Case("good zip", "good.zip", zip_of(good), False)]

    def add(label: str, data: bytes, name: str = "upload.zip", refuse: bool | None = True) -> None:
        cases.append(Case(label, name, data, refuse))

    # zip bombs of many small zero-filled files: each under the per-entry ratio check, together past the disk budget
    for n, size in [(200, 60_000), (1000, 60_000), (3000, 20_000), (20_000, 1000), (400, 63_000), (100, 1_000_000)]:
        add(f"zero-filled bomb {n} x {size:,} B", zip_of({f"z/c{i % 2}/{i}.png": b"\0" * size for i in range(n)}))
    add("nested zip bomb", zip_of({f"z/c{i}/inner{i}.zip": zip_of({f"{j}.png": b"\0" * 60_000 for j in range(50)}) for i in range(2)}))
    add("one 50 MB zero entry (ratio)", zip_of({"z/a/0.png": b"\0" * 50_000_000}))
    add("stored (uncompressed) zeros", zip_of({f"z/c{i % 2}/{i}.png": b"\0" * 100_000 for i in range(30)}, zipfile.ZIP_STORED))
    add("lzma zeros", zip_of({f"z/c{i % 2}/{i}.png": b"\0" * 60_000 for i in range(200)}, zipfile.ZIP_LZMA))
    add("bzip2 zeros", zip_of({f"z/c{i % 2}/{i}.png": b"\0" * 60_000 for i in range(200)}, zipfile.ZIP_BZIP2))
    # tar and gzip bombs (the uploader takes .zip: a tar named .zip is a corrupt zip)
    add("tar of zeros named .zip", _tar({f"z/c{i % 2}/{i}.png": b"\0" * 50_000 for i in range(100)}))
    add("tar.gz of zeros named .zip", _tar({f"z/c{i % 2}/{i}.png": b"\0" * 500_000 for i in range(100)}, "w:gz"))
    add("tar with a symlink named .zip", _tar({"z/a/link.png": None, "z/b/0.png": small_png()}))
    add("gzip of zeros named .zip", zlib.compress(b"\0" * 10_000_000))
    # entries that escape the folder
    for bad in [f"../{ESCAPE}", f"../../../../../../tmp/{ESCAPE}", f"/tmp/{ESCAPE}", f"data/a/../../../{ESCAPE}", f"C:/{ESCAPE}",
                f"C:\\{ESCAPE}", f"..\\..\\{ESCAPE}", f"data/a/..\\..\\..\\{ESCAPE}", f"//{ESCAPE}", f"\\\\host\\{ESCAPE}",
                f"data/./../{ESCAPE}"]:
        add(f"escaping entry {bad!r}", zip_of({**good, bad: small_png()}))
    # symbolic links
    for target in ["/etc/passwd", "../../../..", f"/tmp/{ESCAPE}", "data/a/0.png", "/"]:
        add(f"symlink to {target!r}", zip_of({**good, "data/a/link.png": _symlink("data/a/link.png", target)}))
    add("symlinked class folder", zip_of({**good, "data/c": _symlink("data/c", "/etc")}))
    # corrupt archives
    whole = zip_of(good)
    for cut in (0, 4, 22, 30, 100, len(whole) // 3, len(whole) // 2, len(whole) - 22, len(whole) - 1):
        add(f"truncated at {cut} B", whole[:cut])
    flipped = bytearray(whole)
    for i in range(40, len(flipped) - 200, 97):
        flipped[i] ^= 0xFF
    add("flipped bytes (bad CRC)", bytes(flipped))
    add("random bytes", bytes((i * 7919 + 13) % 256 for i in range(50_000)))
    add("empty file", b"")
    add("end-of-central-directory only", b"PK\x05\x06" + b"\0" * 18)
    add("PK header then junk", b"PK\x03\x04" + b"\xff" * 1000)
    enc = bytearray(zip_of({"data/a/0.png": small_png(), "data/b/0.png": small_png(1)}, zipfile.ZIP_STORED))
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # set the "encrypted" flag in every header
        at = enc.find(sig)
        while at >= 0:
            off = at + (6 if sig == b"PK\x03\x04" else 8)
            enc[off] |= 1
            at = enc.find(sig, at + 4)
    add("encrypted entries", bytes(enc))
    odd = bytearray(zip_of({"data/a/0.png": small_png(), "data/b/0.png": small_png(1)}, zipfile.ZIP_STORED))
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99 (AES): unsupported
        at = odd.find(sig)
        while at >= 0:
            odd[at + off] = 99
            at = odd.find(sig, at + 4)
    add("unknown compression method", bytes(odd))
    add("zip with no entries", zip_of({}))
    dup = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(dup, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": the point of this case
        for _ in range(2):
            for k, v in good.items():
                zf.writestr(k, v)
    add("every entry twice", dup.getvalue(), refuse=None)
    add("file and folder of one name", zip_of({"data/a": b"x", "data/a/0.png": small_png(), "data/b/0.png": small_png()}))
    add("a 300-character name", zip_of({**good, "data/a/" + "n" * 300 + ".png": small_png()}))
    add("a 5000-character path", zip_of({**good, "data/a/" + "/".join(["d" * 50] * 100) + "/0.png": small_png()}))
    add("200 nested folders", zip_of({"data/" + "/".join(["d"] * 200) + "/0.png": small_png()}))
    add("a NUL in a name (zipfile cuts it there: data/a/x, not an image)", zip_of({**good, "data/a/x\0y.png": small_png()}), refuse=None)
    # not images
    add("text files named .png", zip_of({f"data/{c}/{i}.png": b"not an image" for c in "ab" for i in range(3)}))
    add("html and scripts", zip_of({"data/a/index.html": b"<script>alert(1)</script>", "data/b/run.sh": b"rm -rf /"}))
    add("images inside inner zips only", zip_of({"data/a/inner.zip": zip_of(good), "data/b/inner.zip": zip_of(good)}))
    add("a truncated PNG per class", zip_of({f"data/{c}/0.png": small_png()[:30] for c in "ab"}))
    # huge pixel counts in tiny files (the header is the bound)
    for w, h in [(60_000, 60_000), (100_000, 1), (1, 100_000), (2**31 - 1, 2**31 - 1), (20_000, 20_000), (5000, 5000)]:
        add(f"PNG header {w}x{h}", zip_of({**good, "data/a/big.png": png(w, h)}))
    add("complete 1-bit PNG 16000x16000", zip_of({**good, "data/a/big.png": png_full(16_000, 16_000)}))
    add("complete 1-bit PNG 8000x8000 per class", zip_of({f"data/{c}/{i}.png": png_full(8000, 8000) for c in "ab" for i in range(2)}))
    for w, h in [(65_000, 65_000), (30_000, 30_000)]:
        add(f"JPEG header {w}x{h}", zip_of({**good, "data/b/big.jpg": _jpeg(w, h)}))
        add(f"GIF header {w}x{h} (not a type the lab reads: ignored)", zip_of({**good, "data/b/big.gif": _gif(w, h)}), refuse=None)
        add(f"GIF header {w}x{h} named .png", zip_of({**good, "data/b/big.png": _gif(w, h)}))
    for w, h in [(50_000, 50_000), (-50_000, 50_000), (1, 2**31 - 1)]:
        add(f"BMP header {w}x{h}", zip_of({**good, "data/b/big.bmp": _bmp(w, h)}))
    # empty classes
    add("class folders without files", zip_of({"data/a/": b"", "data/b/": b""}))
    add("one class only", zip_of({f"data/a/{i}.png": small_png(i) for i in range(4)}))
    add("one class with images, one empty", zip_of({**{f"data/a/{i}.png": small_png(i) for i in range(4)}, "data/b/": b""}))
    add("train/ and test/ with empty test classes", zip_of({**{f"data/train/{c}/{i}.png": small_png(i) for c in "ab" for i in range(4)},
                                                           "data/test/a/": b"", "data/test/b/": b""}))
    add("only __MACOSX", zip_of({"__MACOSX/a/0.png": small_png(), "__MACOSX/b/0.png": small_png()}))
    add("only hidden files", zip_of({"data/a/.0.png": small_png(), "data/b/.0.png": small_png()}))
    add("1000 empty class folders", zip_of({f"data/c{i}/": b"" for i in range(1000)}))
    add("one image in each of 600 classes", zip_of({f"data/c{i}/0.png": small_png(i) for i in range(600)}), refuse=None)
    return cases
