"""The experiment pipeline: one TOML study config -> the paper's tables.

For every method × classifier × seed ("cell") it builds the rebalanced training set,
trains the classifier, evaluates it on the balanced test split and saves the cell's
result as soon as it finishes. Per method × seed it also measures the generation
metric (FID on Inception-v3, or the labelled judge-feature substitute) of
(imbalanced + generated) against the original full train split, and KID.

    STUDY/config.json        kind "study" + the StudyConfig (a folder holds one study)
    STUDY/status.json        progress over cells
    STUDY/cells/<method>__<classifier>__seed<k>/   a classifier run (results.json when done)
    STUDY/sets/<method>__seed<k>.safetensors       the generated images (not the real ones)
    STUDY/generation/<method>__seed<k>.json        generation metrics
    STUDY/cfg/seed<k>/       the CFG diffusion run for that seed (trained once, sampled per w)
    STUDY/results.csv, results.json   mean ± std over seeds, one row per method × classifier

Running a study on its own folder again resumes it: finished cells are skipped. A
folder holding another study (or anything else) is refused and left untouched.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.atomic import atomic_write, atomic_write_json, read_json
from core.callbacks import Callbacks
from core.data.imageset import ImageSet
from core.data.loading import DATASETS, DataConfig
from core.jobconfig import JobConfig
from core.errors import Cancelled, ConfigError, LabError
from core.generators.registry import METHODS
from core.nets.resnet import ARCHS
from core.runs import Run

KIND = "study"
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def cfg_name(w: float) -> str:
    """The row/provenance name of a CFG fill at guidance w (paper's w; guidance_scale = 1 + w)."""
    return f"cfg@w={float(w):g}"


@dataclass
class StudyConfig(JobConfig):  # its from_dict below is strict: a study file must not hide typos
    name: str = "study"  # shown in tables; part of the study's identity
    data: DataConfig = field(default_factory=DataConfig)
    methods: list[str] = field(default_factory=lambda: ["none", "oversample", "mixup", "cutmix", "cfg", "sd"])
    cfg_ws: list[float] = field(default_factory=lambda: [0.1, 7.5])  # paper's w: ε̃ = (1+w)·ε(x,c) − w·ε(x)
    classifiers: list[str] = field(default_factory=lambda: ["small"])  # small | resnet18 | resnet50
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # classifier + generator seeds (the imbalanced split is data.seed's)
    target: int | None = None  # images per class after filling (None = the largest class)
    classifier: dict = field(default_factory=dict)  # ClassifierConfig overrides for every classifier (epochs, lr, ...)
    classifier_overrides: dict = field(default_factory=dict)  # per-arch overrides, e.g. {"resnet50": {"batch_size": 128}}
    method_params: dict = field(default_factory=dict)  # generator kwargs per method, e.g. {"mixup": {"lam": 0.6}}
    cfg_train: dict = field(default_factory=dict)  # CFGTrainConfig overrides (preset, steps, batch_size, ...)
    cfg_sample: dict = field(default_factory=dict)  # CFGGenerator kwargs (sampler, steps, batch_size)
    generation_metrics: bool = True  # FID/KID (or the judge substitute) per method and seed
    extractor: str = "auto"  # auto (Inception-v3 if its weights exist, else judge CNN) | inception | judge
    sd_on_cpu: bool = False  # allow Stable Diffusion fills without a GPU (very slow)
    device: str | None = None  # cpu | cuda | None (CUDA when available); not part of the study's identity

    @classmethod
    def from_dict(cls, d: dict) -> "StudyConfig":
        d = dict(d)
        d.pop("kind", None), d.pop("created", None)
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"Unknown study option(s): {', '.join(unknown)}.", f"Known options: {', '.join(cls.__dataclass_fields__)}.")
        if isinstance(d.get("data"), dict):
            bad = sorted(set(d["data"]) - set(DataConfig.__dataclass_fields__))
            if bad:
                raise ConfigError(f"Unknown [data] option(s): {', '.join(bad)}.", f"Known: {', '.join(DataConfig.__dataclass_fields__)}.")
            d["data"] = DataConfig.from_dict(d["data"])
        cfg = cls(**d)
        cfg.validate()
        return cfg

    @classmethod
    def from_toml(cls, path: str | Path) -> "StudyConfig":
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"Study config {path} not found.", "Check the path, or use --preset quick.")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}).", "Fix the syntax; see studies/quick.toml for an example.")
        metrics = raw.pop("metrics", None)
        if isinstance(metrics, dict):  # [metrics] generation = true, extractor = "auto"
            raw.setdefault("generation_metrics", metrics.pop("generation", True))
            if "extractor" in metrics:
                raw.setdefault("extractor", metrics.pop("extractor"))
            if metrics:
                raise ConfigError(f"Unknown [metrics] option(s): {', '.join(metrics)}.", "Known: generation, extractor.")
        return cls.from_dict(raw)

    def validate(self) -> None:
        from core.metrics.generation import EXTRACTORS

        if self.data.dataset not in DATASETS:
            raise ConfigError(f"Unknown dataset '{self.data.dataset}'.", f"Choose one of: {', '.join(DATASETS)}.")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ConfigError(f"Unknown method(s) {bad or '(none given)'}.", f"Choose from: {', '.join(METHODS)}.")
        bad = [c for c in self.classifiers if c not in ARCHS]
        if bad or not self.classifiers:
            raise ConfigError(f"Unknown classifier(s) {bad or '(none given)'}.", f"Choose from: {', '.join(ARCHS)}.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"Seeds {self.seeds} must be a non-empty list without repeats.", "Use e.g. seeds = [0, 1].")
        if "cfg" in self.methods and not self.cfg_ws:
            raise ConfigError("Method 'cfg' needs at least one guidance weight.", "Set cfg_ws = [0.1, 7.5] (the paper's w).")
        if any(not math.isfinite(float(w)) or float(w) < 0 for w in self.cfg_ws):
            raise ConfigError(f"Guidance weights {self.cfg_ws} must be finite and >= 0.", "Use the paper's w, e.g. [0.1, 7.5] (w = 0 is plain conditional).")
        if self.extractor not in EXTRACTORS:
            raise ConfigError(f"Unknown extractor '{self.extractor}'.", f"Choose one of: {', '.join(EXTRACTORS)}.")
        from core.train.classifier import ClassifierConfig

        known = set(ClassifierConfig.__dataclass_fields__) - {"data", "arch", "seed", "device"}
        for where, over in [("classifier", self.classifier), *[(f"classifier_overrides.{k}", v) for k, v in self.classifier_overrides.items()]]:
            bad = sorted(set(over) - known)
            if bad:
                raise ConfigError(f"Unknown [{where}] option(s): {', '.join(bad)}.", f"Known: {', '.join(sorted(known))}.")
        for k in self.classifier_overrides:
            if k not in ARCHS:
                raise ConfigError(f"classifier_overrides names unknown classifier '{k}'.", f"Choose from: {', '.join(ARCHS)}.")
        for k in self.method_params:
            if k not in METHODS:
                raise ConfigError(f"method_params names unknown method '{k}'.", f"Choose from: {', '.join(METHODS)}.")

    def variants(self) -> list[tuple[str, str, float | None]]:
        """(row name, method, w) for every method, one per w for cfg."""
        out = []
        for m in self.methods:
            if m == "cfg":
                out += [(cfg_name(w), "cfg", float(w)) for w in self.cfg_ws]
            else:
                out.append((m, m, None))
        return out

    def identity(self) -> dict:
        """What must match for a folder to be resumed as this study (device excluded)."""
        d = json.loads(json.dumps(self.to_dict(), default=str))
        d.pop("device", None)
        return d


PAPER_COUNTS = [500 * (i + 1) for i in range(10)]  # the paper's Table 1: airplane 500 ... truck 5000

PRESETS: dict[str, StudyConfig] = {
    # Digits on 2 CPU cores in ~10 minutes. Exponential profile, ratio 50: counts 2 ... 144.
    "quick": StudyConfig(
        name="quick",
        data=DataConfig(dataset="digits", profile="exponential", ratio=50.0),
        methods=["none", "oversample", "mixup", "cutmix", "cfg", "sd"],
        cfg_ws=[0.1, 7.5],
        classifiers=["small"],
        seeds=[0, 1],
        classifier={"epochs": 30, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4, "warmup_epochs": 1.0},
        method_params={"mixup": {"lam": 0.6}, "cutmix": {"lam": 0.6}},
        cfg_train={"preset": "tiny", "steps": 500, "batch_size": 64},
        cfg_sample={"sampler": "dpm", "steps": 20},
    ),
    # The paper's study for a GPU: CIFAR-10, Table 1 counts, λ = 0.6, w ∈ {0.1, 7.5}, ResNet18/50.
    "paper": StudyConfig(
        name="paper",
        data=DataConfig(dataset="cifar10", profile="custom", counts=PAPER_COUNTS),
        methods=["none", "oversample", "mixup", "cutmix", "cfg", "sd"],
        cfg_ws=[0.1, 7.5],
        classifiers=["resnet18", "resnet50"],
        seeds=[0, 1, 2],
        target=5000,
        classifier={"epochs": 100, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4, "warmup_epochs": 2.0, "cifar_stem": True},
        method_params={"mixup": {"lam": 0.6}, "cutmix": {"lam": 0.6}, "sd": {"w": 6.5, "steps": 25}},
        cfg_train={"preset": "ddpm", "steps": 100_000, "batch_size": 128},
        cfg_sample={"sampler": "dpm", "steps": 25},
    ),
}


def preset(name: str) -> StudyConfig:
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'.", f"Choose one of: {', '.join(PRESETS)}, or pass --config FILE.")
    return StudyConfig.from_dict(json.loads(json.dumps(PRESETS[name].to_dict())))  # a fresh copy


# ------------------------------------------------------------------- folder / cells
def open_study(cfg: StudyConfig, out_dir: str | Path) -> Run:
    """The study's run folder: new, or the same study to resume. Anything else is refused untouched."""
    out_dir = Path(out_dir)
    saved = read_json(out_dir / "config.json")
    if saved is not None:
        if saved.get("kind") != KIND:
            raise ConfigError(f"{out_dir} holds a '{saved.get('kind')}' run, not a study.", "Choose another --out folder; nothing was changed.")
        try:
            same = StudyConfig.from_dict(saved).identity() == cfg.identity()
        except LabError:
            same = False
        if not same:
            raise ConfigError(
                f"{out_dir} holds another study ('{saved.get('name')}') with a different config; its results were left untouched.",
                "Choose a new --out folder, or rerun with exactly that study's config to resume it.",
            )
    return Run.open_or_create(out_dir, KIND, cfg.to_dict(), resume=True)


def _slug(variant: str) -> str:
    """A file-name-safe variant name: cfg@w=7.5 -> cfg_w7.5."""
    return variant.replace("@", "_").replace("=", "")


def _cell_dir(root: Path, variant: str, clf: str, seed: int) -> Path:
    return root / "cells" / f"{_slug(variant)}__{clf}__seed{seed}"


def _save_generated(path: Path, part: ImageSet) -> None:
    from safetensors.torch import save_file

    tensors = {"images": part.images.contiguous(), "labels": part.labels.contiguous()}
    if part.soft_labels is not None:
        tensors["soft_labels"] = part.soft_labels.float().contiguous()
    meta = {"provenance": json.dumps(part.provenance.tolist()), "classes": json.dumps(part.classes)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _load_generated(path: Path) -> ImageSet | None:
    from safetensors import safe_open

    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k) for k in f.keys()}
        return ImageSet(t["images"], t["labels"], json.loads(meta["classes"]), np.array(json.loads(meta["provenance"]), dtype=object), t.get("soft_labels"))
    except Exception:  # a damaged cache is regenerated, never trusted
        return None


class _Skip(Exception):
    """A method that cannot run here; the message is the row's reason."""


# ------------------------------------------------------------------------- the run
class _Study:
    def __init__(self, cfg: StudyConfig, out_dir: Path, callbacks: Callbacks):
        self.cfg, self.root, self.cb = cfg, out_dir, callbacks
        self._extractor, self._extractor_note = None, ""
        self.notes: list[str] = []

    def log(self, msg: str) -> None:
        self.cb.progress(self.done, self.total, msg)

    # -- generators ---------------------------------------------------------------
    def _cfg_generator(self, seed: int, w: float):
        try:
            from core.generators.cfg import CFGGenerator
            from core.train.cfg import CFGTrainConfig, train_cfg
        except ImportError as exc:
            raise _Skip(f"CFG generator not available ({type(exc).__name__}: {exc}).")
        run_dir = self.root / "cfg" / f"seed{seed}"
        results = read_json(run_dir / "status.json") or {}
        if results.get("state") != "done":
            tc = CFGTrainConfig.from_dict({**self.cfg.cfg_train, "data": self.cfg.data.to_dict(), "seed": seed, "device": self.cfg.device})
            self.log(f"training the CFG model for seed {seed}")
            resume = (run_dir / "config.json").exists()
            cb = Callbacks(on_progress=lambda d, t, m="": self.cb.progress(self.done, self.total, f"CFG seed {seed}: {m or f'{d}/{t}'}"),
                           should_stop=self.cb.should_stop)
            train_cfg(tc, run_dir, callbacks=cb, resume=resume)
            if self.cb.stop_requested():
                raise Cancelled("study cancelled during CFG training")
        return CFGGenerator(run_dir, w=w, device=self.cfg.device, classes=self.classes, channels=self.channels, image_size=self.image_size, **self.cfg.cfg_sample)

    def _sd_generator(self, train: ImageSet):
        params = dict(self.cfg.method_params.get("sd", {}))
        try:
            from core.generators.sd import SDGenerator, sd_available
        except ImportError as exc:
            raise _Skip(f"Stable Diffusion generator not available ({type(exc).__name__}: {exc}).")
        ok, reason = sd_available(params.get("model", "stable-diffusion-v1-5/stable-diffusion-v1-5"))
        if not ok:
            raise _Skip(f"Stable Diffusion weights missing: {reason}")
        if not torch.cuda.is_available() and not self.cfg.sd_on_cpu and self.cfg.device != "cuda":
            raise _Skip("Stable Diffusion needs a GPU here (512 px sampling takes minutes per image on CPU); set sd_on_cpu = true to force it.")
        return SDGenerator(classes=train.classes, channels=train.channels, image_size=train.image_size, device=self.cfg.device, **params)

    def generator(self, method: str, w: float | None, train: ImageSet, seed: int):
        from core.generators.registry import build_generator

        if method == "cfg":
            return self._cfg_generator(seed, w)
        if method == "sd":
            return self._sd_generator(train)
        return build_generator(method, train, **self.cfg.method_params.get(method, {}))

    def balanced_set(self, variant: str, method: str, w: float | None, imbalanced: ImageSet, seed: int) -> ImageSet:
        from core.balance import balance

        if method == "none":
            return imbalanced
        path = self.root / "sets" / f"{_slug(variant)}__seed{seed}.safetensors"
        part = _load_generated(path)
        if part is not None:
            return ImageSet.concat([imbalanced, part])
        gen = self.generator(method, w, imbalanced, seed)
        self.log(f"{variant}, seed {seed}: generating")
        full = balance(imbalanced, gen, self.cfg.target, seed=seed,
                       progress=lambda d, t: self.cb.progress(self.done, self.total, f"{variant}, seed {seed}: generated {d}/{t}"),
                       should_stop=self.cb.should_stop)
        if len(full) > len(imbalanced):
            _save_generated(path, full.subset(torch.arange(len(imbalanced), len(full))))
        return full

    # -- generation metrics ---------------------------------------------------------
    def extractor(self):
        if self._extractor is None:
            from core.metrics.generation import get_extractor

            self._extractor, self._extractor_note = get_extractor(self.cfg.extractor, self.cfg.data, self.cfg.device,
                                                                  progress=lambda d, t, m="": self.log(f"feature extractor: {m}"))
            if self._extractor_note:
                self.notes.append(self._extractor_note)
        return self._extractor

    def generation(self, variant: str, seed: int, ds, balanced: ImageSet) -> dict | None:
        from core.metrics.generation import generation_metrics

        path = self.root / "generation" / f"{_slug(variant)}__seed{seed}.json"
        saved = read_json(path)
        if saved is not None:
            return saved
        ex = self.extractor()
        self.log(f"{variant}, seed {seed}: {ex.label}")
        res = generation_metrics(ex, ds.train, f"{ds.name}-train", balanced, seed=seed)
        res.update(variant=variant, seed=seed)
        atomic_write_json(path, res)
        return res

    # -- the loop -------------------------------------------------------------------
    def run(self) -> tuple[list[dict], str]:
        from core.data.loading import load_dataset
        from core.data.profiles import apply_profile
        from core.metrics.classification import check_test_classes
        from core.balance import train_set_info
        from core.train.classifier import ClassifierConfig, train_classifier

        cfg = self.cfg
        ds = load_dataset(cfg.data)
        check_test_classes(ds.test.labels, ds.test.num_classes, ds.test.classes)
        imbalanced = apply_profile(ds.train, cfg.data)
        self.classes, self.channels, self.image_size = ds.classes, ds.channels, ds.image_size
        variants = cfg.variants()
        cells = [(v, c, s) for v in variants for c in cfg.classifiers for s in cfg.seeds]
        self.total, self.done = len(cells), 0
        results: dict[tuple[str, str, int], dict] = {}
        gen: dict[tuple[str, int], dict] = {}
        skipped: dict[str, str] = {}
        state = "done"
        for (variant, method, w) in variants:
            for si, seed in enumerate(cfg.seeds):
                todo = [(c, _cell_dir(self.root, variant, c, seed)) for c in cfg.classifiers]
                finished = {c: read_json(d / "results.json") for c, d in todo if (d / "results.json").exists()}
                for c, r in finished.items():
                    results[(variant, c, seed)] = r
                gpath = self.root / "generation" / f"{_slug(variant)}__seed{seed}.json"
                need_gen = cfg.generation_metrics and not gpath.exists()
                if len(finished) == len(todo) and not need_gen:
                    self.done += len(todo)
                    if cfg.generation_metrics:
                        gen[(variant, seed)] = read_json(gpath)
                    continue
                if self.cb.stop_requested():
                    return self._rows(results, gen, skipped), "cancelled"
                try:
                    balanced = self.balanced_set(variant, method, w, imbalanced, seed)
                except _Skip as exc:
                    skipped[variant] = str(exc)
                    self.done += len(todo) * (len(cfg.seeds) - si)
                    self.log(f"{variant}: skipped ({exc})")
                    break
                except Cancelled:
                    return self._rows(results, gen, skipped), "cancelled"
                except LabError as exc:
                    if method in ("cfg", "sd"):  # a generator that cannot run: a reasoned skip
                        skipped[variant] = f"{type(exc).__name__}: {exc}"
                        self.done += len(todo) * (len(cfg.seeds) - si)
                        self.log(f"{variant}: skipped ({exc})")
                        break
                    raise
                if need_gen:
                    gen[(variant, seed)] = self.generation(variant, seed, ds, balanced)
                elif cfg.generation_metrics:
                    gen[(variant, seed)] = read_json(gpath)
                for c, d in todo:
                    if c in finished:
                        self.done += 1
                        continue
                    over = {**cfg.classifier, **cfg.classifier_overrides.get(c, {})}
                    ccfg = ClassifierConfig.from_dict({**over, "data": cfg.data.to_dict(), "arch": c, "seed": seed, "device": cfg.device})
                    info = train_set_info(method, {"w": w} if w is not None else cfg.method_params.get(method, {}), cfg.target)
                    self.log(f"{variant} × {c}, seed {seed}: training")
                    ccb = Callbacks(on_progress=lambda d_, t_, m="": self.cb.progress(self.done, self.total, f"{variant} × {c}, seed {seed}: {m}"),
                                    should_stop=self.cb.should_stop)
                    res = train_classifier(ccfg, d, callbacks=ccb, resume=True, train_set=balanced, dataset=ds, train_set_info=info)
                    if res.get("cancelled"):
                        return self._rows(results, gen, skipped), "cancelled"
                    results[(variant, c, seed)] = res
                    self.done += 1
                    self.cb.metrics({"cell": f"{variant}__{c}__seed{seed}", "accuracy": res["accuracy"], "macro_f1": res["macro_f1"]})
                    self.log(f"{variant} × {c}, seed {seed}: accuracy {res['accuracy']:.4f}")
        return self._rows(results, gen, skipped), state

    def _rows(self, results, gen, skipped) -> list[dict]:
        return aggregate(self.cfg, results, gen, skipped)


def _ms(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof = 1; 0 for a single seed) over seeds."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if len(v) == 0:
        return {"mean": None, "std": None}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def aggregate(cfg: StudyConfig, results: dict, gen: dict, skipped: dict) -> list[dict]:
    rows = []
    for variant, method, w in cfg.variants():
        for clf in cfg.classifiers:
            seeds = [s for s in cfg.seeds if (variant, clf, s) in results]
            row = {"method": variant, "classifier": clf, "seeds": seeds}
            rs = [results[(variant, clf, s)] for s in seeds]
            for k in ("accuracy", "balanced_accuracy", "macro_f1", "minority_f1"):
                row[k] = _ms([r.get(k) for r in rs])
            if rs:
                pcf = np.array([r["per_class_f1"] for r in rs], dtype=float)
                row["per_class_f1"] = {"classes": rs[0].get("classes"), "mean": pcf.mean(0).tolist(),
                                       "std": (pcf.std(0, ddof=1) if len(rs) > 1 else np.zeros(pcf.shape[1])).tolist()}
                row["minority_classes"] = rs[0].get("minority_classes")
                row["train_images"] = rs[0].get("train_images")
            else:
                row["per_class_f1"] = None
            gs = [gen[(variant, s)] for s in cfg.seeds if gen.get((variant, s))]
            if gs:
                key = gs[0]["key"]
                row[key] = {**_ms([g[key] for g in gs]), "n_images": gs[0]["n_images"], "n_reference": gs[0]["n_reference"],
                            "label": gs[0]["label"], "seeds": [g["seed"] for g in gs]}
                row["kid"] = {**_ms([g["kid"] for g in gs]), "n_images": gs[0]["kid_subset_size"], "label": gs[0]["kid_label"], "extractor": gs[0]["extractor"]}
                per = [[p["value"] for p in g["per_class"]] for g in gs]
                row[f"per_class_{key}"] = [
                    {"class": p["class"], "n_images": p["n_images"], **_ms([pc[i] for pc in per])} for i, p in enumerate(gs[0]["per_class"])
                ]
            else:
                row["kid"] = None
            row["skipped"] = skipped.get(variant) if not seeds else None
            rows.append(row)
    return rows


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """One flat row per method × classifier (what results.csv holds)."""
    flat = []
    for r in rows:
        f = {"method": r["method"], "classifier": r["classifier"], "seeds": ";".join(map(str, r["seeds"])), "n_seeds": len(r["seeds"])}
        for k in ("accuracy", "balanced_accuracy", "macro_f1", "minority_f1"):
            f[f"{k}_mean"], f[f"{k}_std"] = r[k]["mean"], r[k]["std"]
        for key in ("fid", "fd_judge"):
            if r.get(key):
                f[f"{key}_mean"], f[f"{key}_std"], f[f"{key}_n_images"] = r[key]["mean"], r[key]["std"], r[key]["n_images"]
        if r.get("kid"):
            f["kid_extractor"], f["kid_mean"], f["kid_std"], f["kid_n_images"] = r["kid"]["extractor"], r["kid"]["mean"], r["kid"]["std"], r["kid"]["n_images"]
        if r.get("per_class_f1"):
            for name, m in zip(r["per_class_f1"]["classes"] or range(len(r["per_class_f1"]["mean"])), r["per_class_f1"]["mean"]):
                f[f"f1_{name}"] = m
        f["skipped"] = r.get("skipped") or ""
        flat.append(f)
    return pd.DataFrame(flat)


def run_study(cfg: StudyConfig, out_dir: str | Path, callbacks: Callbacks | None = None) -> pd.DataFrame:
    """Run (or resume) a study in ``out_dir``; writes results.csv/results.json and returns the table."""
    cfg.validate()
    out_dir = Path(out_dir)
    cb = callbacks or Callbacks()
    run = open_study(cfg, out_dir)
    run.set_status("running", message="starting")
    last = [0.0]

    def progress(d: int, t: int, m: str = "") -> None:
        cb.progress(d, t, m)
        if time.time() - last[0] >= 1.0:  # status.json at most once a second
            last[0] = time.time()
            run.set_status(step=d, total=t, message=m)

    study = _Study(cfg, out_dir, Callbacks(on_metrics=cb.on_metrics, should_stop=cb.should_stop, on_progress=progress))
    t0 = time.time()
    try:
        rows, state = study.run()
    except LabError as exc:
        run.set_status("failed", error=str(exc), message="failed")
        raise
    except BaseException as exc:
        run.set_status("failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted", error=f"{type(exc).__name__}: {exc}")
        raise
    frame = rows_frame(rows)
    payload = {"study": cfg.name, "rows": rows, "notes": study.notes, "state": state, "seconds": time.time() - t0}
    atomic_write_json(out_dir / "results.json", payload)
    atomic_write(out_dir / "results.csv", lambda tmp: frame.to_csv(tmp, index=False))
    run.set_status(state, step=study.done, total=study.total, message=f"{state}: {sum(1 for r in rows if r['seeds'])} rows with results")
    return frame


def load_results(out_dir: str | Path) -> dict | None:
    return read_json(Path(out_dir) / "results.json")
