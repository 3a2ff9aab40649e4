"""Dataset loaders: embedded digits, torchvision datasets, image folders and zips.

All return a :class:`LoadedDataset` of uint8 tensors. Decoded folders are cached on
disk (``.cache/datasets/<key>``) so the second load of CIFAR-10 is a memory-map away.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.data import imagefolder
from core.data.archive import extract_zip
from core.data.imageset import ImageSet, LoadedDataset
from core.errors import ConfigError, DataError
from core.paths import cache_dir

# name -> (torchvision class name, download size for the error message)
TORCHVISION = {
    "cifar10": ("CIFAR10", "170 MB", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "169 MB", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python"),
    "mnist": ("MNIST", "12 MB", "https://ossci-datasets.s3.amazonaws.com/mnist/", "MNIST/raw"),
    "fashion-mnist": ("FashionMNIST", "30 MB", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "FashionMNIST/raw"),
}
DATASETS = ["digits", *TORCHVISION, "imagefolder"]
CACHE_VERSION = 1
JUDGE_SPLIT_SEED = 0  # the judge split is part of the dataset's definition: fixed, never the run seed


@dataclass
class DataConfig:
    """Which data, at what resolution, made imbalanced how. Saved with every run."""

    dataset: str = "digits"  # digits | cifar10 | cifar100 | mnist | fashion-mnist | imagefolder
    data_dir: str | None = None  # folder or .zip; for torchvision sets, the download/cache root
    image_size: int | None = None  # pixels (square); None = native / most common size
    profile: str = "full"  # full | paper | linear | exponential | step | custom | balanced
    ratio: float = 10.0  # imbalance ratio max/min, for linear | exponential | step
    minority_fraction: float = 0.5  # fraction of classes that are minorities, for step
    counts: list[int] | None = None  # per-class counts (custom) or one count (balanced)
    minority_order: str = "index"  # index (class 0 smallest, the paper) | reversed | shuffled
    seed: int = 0  # the shuffled minority order, and which images each class keeps unless subset_seed is set
    subset_seed: int | None = None  # which images each class keeps (None = seed); a study sets it per seed, the minority classes stay seed's
    test_fraction: float = 0.2  # held-out share when the source has no test split
    test_per_class: int | None = None  # keep the first k test images of each class (None = the whole test split; smoke presets)
    judge_per_class: int = 0  # images per class reserved from train for the judge CNN before any profile (0 = none: the judge trains on all of train)
    validation_fraction: float = 0.0  # share of each class's train images (after the judge split) reserved for validation before any profile (0 = none)
    validation_min: int = 20  # ... but at least this many per class (when validation_fraction > 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- digits
def load_digits(image_size: int | None, test_fraction: float) -> LoadedDataset:
    """scikit-learn's 1,797 handwritten digits (8x8, 0..16), upscaled to 16x16 by default."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    images = torch.from_numpy((d.images / 16.0 * 255.0).round().astype(np.uint8)).unsqueeze(1)
    images = _resize(images, image_size or 16)
    labels = torch.from_numpy(d.target.astype(np.int64))
    # The split is part of the dataset's definition, so its seed is fixed (0), not the run seed.
    tr, te = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=d.target, random_state=0)
    classes = [str(i) for i in range(10)]
    return LoadedDataset(
        "digits",
        ImageSet(images[tr], labels[tr], classes),
        ImageSet(images[te], labels[te], classes),
        source="sklearn.datasets.load_digits",
    )


# ---------------------------------------------------------------------- torchvision
def _offline() -> bool:
    return os.environ.get("IMBALANCE_LAB_OFFLINE", "") not in ("", "0")


def load_torchvision(name: str, root: Path, image_size: int | None) -> LoadedDataset:
    import torchvision.datasets as tvd

    cls_name, size, url, marker = TORCHVISION[name]
    cls = getattr(tvd, cls_name)

    def get(train: bool):
        try:
            return cls(str(root), train=train, download=False)
        except RuntimeError:
            if _offline():
                raise
            return cls(str(root), train=train, download=True)

    try:
        splits = [get(True), get(False)]
    except Exception as exc:
        raise DataError(
            f"{name} is not in {root} and could not be downloaded ({type(exc).__name__}: {str(exc)[:200]}).",
            f"Download {url} ({size}) and extract it into {root} (so that {root / marker} exists), "
            f"or pass --data-dir pointing at that folder, or at an ImageFolder copy (ROOT/train/<class>/, ROOT/test/<class>/).",
        ) from exc
    out = []
    for ds in splits:
        data = torch.as_tensor(np.asarray(ds.data))
        images = data.permute(0, 3, 1, 2) if data.ndim == 4 else data.unsqueeze(1)
        out.append(ImageSet(_resize(images.contiguous(), image_size), torch.as_tensor(ds.targets), list(ds.classes)))
    return LoadedDataset(name, out[0], out[1], source=str(root))


# ---------------------------------------------------------------------- folders/zip
def _signature(root: Path) -> str:
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            st = os.stat(os.path.join(dirpath, f))
            h.update(f"{os.path.relpath(os.path.join(dirpath, f), root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cache_key(root: Path, image_size: int | None, test_fraction: float) -> str:
    spec = json.dumps([CACHE_VERSION, str(root.resolve()), image_size, test_fraction, _signature(root)])
    return hashlib.sha1(spec.encode()).hexdigest()[:20]


def _save_cache(path: Path, ds: LoadedDataset) -> None:
    from core.data import disk

    need = sum(getattr(ds, s).images.numel() + 8 * len(getattr(ds, s).labels) for s in ("train", "test"))
    if not disk.has_room(need):
        return  # over the cache's disk budget (core.data.disk): the set still loads, it is just decoded again next time
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for split in ("train", "test"):
        s: ImageSet = getattr(ds, split)
        np.save(tmp / f"{split}_images.npy", s.images.numpy())
        np.save(tmp / f"{split}_labels.npy", s.labels.numpy())
    (tmp / "meta.json").write_text(json.dumps({"classes": ds.classes, "skipped": ds.skipped, "source": ds.source}))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def _load_cache(path: Path, name: str) -> LoadedDataset | None:
    meta_path = path / "meta.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    os.utime(path)  # used now: the disk budget evicts the least recently used copies first (core.data.disk)
    splits = []
    for split in ("train", "test"):
        images = torch.from_numpy(np.load(path / f"{split}_images.npy"))
        labels = torch.from_numpy(np.load(path / f"{split}_labels.npy"))
        splits.append(ImageSet(images, labels, meta["classes"]))
    return LoadedDataset(name, splits[0], splits[1], [tuple(x) for x in meta["skipped"]], meta["source"])


def _stratified_split(n_labels: torch.Tensor, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    tr, te = [], []
    labels = n_labels.numpy()
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        idx = idx[g.permutation(len(idx))]
        k = int(round(len(idx) * test_fraction))
        k = min(max(k, 1), len(idx) - 1) if len(idx) > 1 else 0
        te.append(idx[:k])
        tr.append(idx[k:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))


def load_folder(root: Path, image_size: int | None, test_fraction: float, name: str = "imagefolder") -> LoadedDataset:
    """``ROOT/train/<class>`` + ``ROOT/test/<class>``, or ``ROOT/<class>`` split with seed 0."""
    if not root.exists():
        raise DataError(f"Dataset folder not found: {root}.", "Check the path, or choose another dataset.")
    key = _cache_key(root, image_size, test_fraction)
    cpath = cache_dir() / "datasets" / f"{name}-{key}"
    cached = _load_cache(cpath, name)
    if cached is not None:
        return cached
    size = (image_size, image_size) if image_size else None
    if (root / "train").is_dir():
        classes = imagefolder.find_classes(root / "train")
        tr_img, tr_lab, skipped, size, mode = imagefolder.read_split(root / "train", classes, size, None)
        if (root / "test").is_dir():
            test_classes = imagefolder.find_classes(root / "test")
            if test_classes != classes:
                missing = sorted(set(classes) - set(test_classes))
                raise DataError(
                    f"The test split's classes differ from train's (missing in test: {missing or 'none'}; "
                    f"extra: {sorted(set(test_classes) - set(classes)) or 'none'}).",
                    "Give test/ the same class sub-folders as train/.",
                )
            te_img, te_lab, sk2, _, _ = imagefolder.read_split(root / "test", classes, size, mode)
            skipped += sk2
            train, test = ImageSet(tr_img, tr_lab, classes), ImageSet(te_img, te_lab, classes)
        else:
            full = ImageSet(tr_img, tr_lab, classes)
            tr, te = _stratified_split(full.labels, test_fraction)
            train, test = full.subset(tr), full.subset(te)
    else:
        classes = imagefolder.find_classes(root)
        img, lab, skipped, size, mode = imagefolder.read_split(root, classes, size, None)
        full = ImageSet(img, lab, classes)
        tr, te = _stratified_split(full.labels, test_fraction)
        train, test = full.subset(tr), full.subset(te)
    if len(classes) < 2:
        raise DataError(f"{root} has only one class ({classes[0]}).", "A classification dataset needs at least two class folders.")
    ds = LoadedDataset(name, train, test, skipped, source=str(root))
    _save_cache(cpath, ds)
    return ds


# ------------------------------------------------------------------------- entry
def load_dataset(cfg: DataConfig) -> LoadedDataset:
    """Load the balanced train/test splits named by ``cfg`` (no profile applied); with
    ``test_per_class`` k, the test split keeps the first k images of each class (still balanced);
    with ``judge_per_class`` j > 0, j images of each class leave train for ``ds.judge``; then with
    ``validation_fraction`` f > 0, max(validation_min, round(f·n_c)) images of each class c leave
    train for ``ds.validation`` (disjoint from the judge split and the test split by construction)."""
    k = cfg.test_per_class
    if k is not None and (int(k) != k or k < 1):
        raise ConfigError(f"test_per_class={k} must be a positive whole number.", "Leave it empty to test on the whole test split.")
    j = _judge_count(cfg.judge_per_class)
    _check_validation(cfg)
    ds = _load_splits(cfg)
    if j:
        ds = split_judge(ds, j)
    if cfg.validation_fraction:
        ds = split_validation(ds, float(cfg.validation_fraction), int(cfg.validation_min))
    if k is None:
        return ds
    keep = torch.cat([torch.nonzero(ds.test.labels == c).flatten()[: int(k)] for c in range(ds.test.num_classes)])
    return replace(ds, test=ds.test.subset(torch.sort(keep).values))


def _judge_count(j) -> int:
    if isinstance(j, bool) or not isinstance(j, (int, float)) or int(j) != j or j < 0:
        raise ConfigError(f"judge_per_class={j!r} must be a whole number of images per class, 0 or more.",
                          "Use 0 (no judge split: the judge trains on the whole train split) or e.g. 30.")
    return int(j)


def judge_indices(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """Sorted indices (into the train split) of the judge split: per class c, the first
    ``per_class`` of a permutation of c's train images fixed by (JUDGE_SPLIT_SEED, c)."""
    # A stream of its own ("judge" in the seed), apart from the profile's torch.randperm(seed·1_000_003 + c).
    keep = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten().numpy()
        keep.append(idx[np.random.default_rng([JUDGE_SPLIT_SEED, c, *b"judge"]).permutation(len(idx))[:per_class]])
    return torch.sort(torch.from_numpy(np.concatenate(keep))).values


def split_judge(ds: LoadedDataset, per_class: int) -> LoadedDataset:
    """``ds`` with ``per_class`` images of every class moved from ``train`` to ``judge``.

    Taken before any profile, so the profile's kept subset, the images it drops (held-out
    reals), the FD reference (what stays in ``train``) and the test split never meet them."""
    counts = ds.train.counts()
    short = [(c, n) for c, n in enumerate(counts) if n <= per_class]
    if short:
        c, n = min(short, key=lambda t: t[1])
        raise DataError(
            f"judge_per_class={per_class} asks for {per_class} training images of class '{ds.classes[c]}', which has {n}: "
            f"none would be left to train on (every class must keep at least 1).",
            f"Use judge_per_class of at most {min(counts) - 1} for {ds.name}, or 0 to turn the judge split off.",
        )
    mask = torch.zeros(len(ds.train), dtype=torch.bool)
    mask[judge_indices(ds.train.labels, ds.train.num_classes, per_class)] = True
    return replace(ds, train=ds.train.subset(torch.nonzero(~mask).flatten()), judge=ds.train.subset(torch.nonzero(mask).flatten()))


def _check_validation(cfg: DataConfig) -> None:
    f, k = cfg.validation_fraction, cfg.validation_min
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= float(f) < 0.5:
        raise ConfigError(f"validation_fraction={f!r} must be a share in [0, 0.5).", "Use 0.1 (10 % of each class) or 0 for no validation split.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"validation_min={k!r} must be a whole number >= 1.", "Use 20: at least 20 validation images per class.")


def validation_indices(labels: torch.Tensor, num_classes: int, fraction: float, minimum: int) -> torch.Tensor:
    """Sorted indices (into the train split left after the judge split) of the validation split: per
    class c, the first max(minimum, round(fraction·n_c)) of a permutation fixed by (JUDGE_SPLIT_SEED, c,
    "validation"), a stream of its own apart from the judge's and the profile's."""
    keep = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten().numpy()
        k = max(int(minimum), int(round(fraction * len(idx))))
        keep.append(idx[np.random.default_rng([JUDGE_SPLIT_SEED, c, *b"validation"]).permutation(len(idx))[:k]])
    return torch.sort(torch.from_numpy(np.concatenate(keep))).values


def split_validation(ds: LoadedDataset, fraction: float, minimum: int) -> LoadedDataset:
    """``ds`` with each class's validation images moved from ``train`` to ``validation``, before any
    profile: the budget curves and convergence read them, so the test split decides nothing."""
    counts = ds.train.counts()
    need = [max(int(minimum), int(round(fraction * n))) for n in counts]
    short = [(c, n, k) for c, (n, k) in enumerate(zip(counts, need)) if n <= k]
    if short:
        c, n, k = short[0]
        raise DataError(f"The validation split asks for {k} images of class '{ds.classes[c]}', which has {n} left for training: "
                        f"none would be left to train on.", f"Lower validation_min (now {minimum}) or validation_fraction (now {fraction}).")
    mask = torch.zeros(len(ds.train), dtype=torch.bool)
    mask[validation_indices(ds.train.labels, ds.train.num_classes, fraction, minimum)] = True
    return replace(ds, train=ds.train.subset(torch.nonzero(~mask).flatten()), validation=ds.train.subset(torch.nonzero(mask).flatten()))


def _load_splits(cfg: DataConfig) -> LoadedDataset:
    name = cfg.dataset
    if name not in DATASETS:
        raise ConfigError(f"Unknown dataset '{name}'.", f"Choose one of: {', '.join(DATASETS)}.")
    if cfg.image_size is not None and not (4 <= cfg.image_size <= 1024):
        raise ConfigError(f"image_size {cfg.image_size} is out of range.", "Use a size between 4 and 1024 pixels.")
    if not 0.0 < cfg.test_fraction < 1.0:
        raise ConfigError(f"test_fraction {cfg.test_fraction} must be between 0 and 1.", "Use e.g. 0.2.")
    if name == "digits":
        return load_digits(cfg.image_size, cfg.test_fraction)
    data_dir = Path(cfg.data_dir).expanduser() if cfg.data_dir else None
    if data_dir is not None and data_dir.suffix.lower() == ".zip":
        data_dir = extract_zip(data_dir, extract_root(data_dir))
    # one decoded copy per split, however the fraction was spelled (0.2, 0.20, 0.1 + 0.1)
    test_fraction = canonical_fraction(cfg.test_fraction)
    if name == "imagefolder":
        if data_dir is None:
            raise ConfigError("The imagefolder dataset needs a folder or zip.", "Pass --data-dir ROOT (ROOT/<class>/* or ROOT/train/<class>/*).")
        return load_folder(data_dir, cfg.image_size, test_fraction)
    # A torchvision dataset: an ImageFolder copy if data_dir looks like one, else the torchvision root.
    if data_dir is not None and (data_dir / "train").is_dir():
        return load_folder(data_dir, cfg.image_size, test_fraction, name=name)
    return load_torchvision(name, data_dir or cache_dir() / "torchvision", cfg.image_size)


def canonical_fraction(value: float) -> float:
    """A test fraction as the decoded-dataset cache keys it: rounded to 6 decimals, so float noise
    (0.1 + 0.2 against 0.3) makes no second copy on disk."""
    return round(float(value), 6)


def extract_root(zip_path: Path) -> Path:
    """Where a zip is extracted: beside it in its owner's folder (``cache/users/<identity>/zips``)
    when it lies in one, so an upload's images stay in that identity's folder; else the cache."""
    users = (cache_dir() / "users").resolve()
    p = Path(zip_path).expanduser().resolve()
    if p.is_relative_to(users) and len(p.relative_to(users).parts) >= 2:
        return users / p.relative_to(users).parts[0]
    return cache_dir()


def would_download(cfg: DataConfig) -> bool:
    """Whether loading ``cfg`` would download a torchvision set (it is not in its folder yet)."""
    if cfg.dataset not in TORCHVISION:
        return False
    root = Path(cfg.data_dir).expanduser() if cfg.data_dir else cache_dir() / "torchvision"
    if root.suffix.lower() == ".zip" or (root / "train").is_dir():
        return False
    return not (root / TORCHVISION[cfg.dataset][3]).exists()


def prepare(cfg: DataConfig) -> tuple[LoadedDataset, ImageSet]:
    """The dataset plus its imbalanced train split under ``cfg``'s profile."""
    from core.data.profiles import apply_profile

    ds = load_dataset(cfg)
    return ds, apply_profile(ds.train, cfg)
