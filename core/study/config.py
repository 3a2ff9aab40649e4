"""The study's config: StudyConfig, its rows (Variant) and the method tables."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.data.loading import DATASETS, DataConfig
from core.settings.config_check import check_keys, check_kwargs, check_table, field_types
from core.errors import ConfigError
from core.study.gate import thresholds
from core.generators.registry import METHODS
from core.settings.jobconfig import JobConfig, data_from_dict
from core.nets.resnet import ARCHS
from core.store.runs import META_KEYS

KIND = "study"
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def cfg_name(w: float) -> str:
    """The row/provenance name of a CFG fill at guidance w (paper's w; guidance_scale = 1 + w)."""
    return f"cfg@w={float(w):g}"


REAL_FILL = "real"  # tops classes up with the real images the profile dropped (core.data.pool): the bound
FILLS = [m for m in METHODS if m != "none"] + [REAL_FILL]  # what fills classes: the generators, and the real images
LOSS_METHODS = {
    "reweight": "class-balanced loss (Cui et al. 2019): effective-number weights, β = classifier.cb_beta",
    "logit-adjust": "logit-adjusted cross-entropy (Menon et al. 2021), τ = classifier.la_tau (= balanced softmax at τ = 1)",
}
POSTHOC = "posthoc-adjust"
STUDY_METHODS = {**METHODS, REAL_FILL: "the real training images the profile dropped (the bound a perfect generator would reach)", **LOSS_METHODS,
                 POSTHOC: "the `none` model's test logits shifted by −τ·log π (Menon et al. 2021 §4), no retraining",
                 "FILL+LOSS": "fill part of the way (partial_fill), then train with the loss, e.g. cfg+logit-adjust"}
BUDGETS = ("steps", "epochs")


@dataclass(frozen=True)
class Variant:
    """One row of the study: how the training set is filled and which loss trains on it."""

    name: str  # the row's method name, e.g. "cfg@w=0.1+logit-adjust"
    fill: str  # none | oversample | mixup | cutmix | cfg | sd | real
    w: float | None  # CFG guidance (paper's w) when fill is cfg
    loss: str  # ce | reweight | logit-adjust | posthoc-adjust
    partial: bool  # filled only partial_fill of the way (fill+loss combinations)

    @property
    def fill_name(self) -> str:
        """The name of the generated set it uses (one per fill, w and seed): none, cfg@w=0.1, ..."""
        return cfg_name(self.w) if self.fill == "cfg" else self.fill


def parse_method(method: str) -> tuple[str, str]:
    """(fill, loss) of a study method: "cfg" -> (cfg, ce), "reweight" -> (none, reweight),
    "cfg+logit-adjust" -> (cfg, logit-adjust), "posthoc-adjust" -> (none, posthoc-adjust)."""
    if method in METHODS or method == REAL_FILL:
        return method, "ce"
    if method in LOSS_METHODS or method == POSTHOC:
        return "none", method
    fill, plus, loss = method.partition("+")
    if plus and fill in FILLS and loss in LOSS_METHODS:
        return fill, loss
    raise ConfigError(f"Unknown method '{method}'.",
                      f"Choose from: {', '.join(m for m in STUDY_METHODS if m != 'FILL+LOSS')}, or FILL+LOSS with FILL in "
                      f"{', '.join(FILLS)} and LOSS in {', '.join(LOSS_METHODS)} (e.g. cfg+logit-adjust).")


@dataclass
class StudyConfig(JobConfig):  # its from_dict below is strict: a study file must not hide typos
    name: str = "study"  # shown in tables; part of the study's identity
    data: DataConfig = field(default_factory=DataConfig)
    methods: list[str] = field(default_factory=lambda: ["none", "oversample", "mixup", "cutmix", "cfg", "sd"])
    cfg_ws: list[float] = field(default_factory=lambda: [0.1, 7.5])  # paper's w: ε̃ = (1+w)·ε(x,c) − w·ε(x)
    classifiers: list[str] = field(default_factory=lambda: ["small"])  # tiny | small | resnet18 | resnet50
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # classifier + generator + subset seeds
    target: int | None = None  # images per class after filling (None = the largest class)
    budget: str = "steps"  # steps: every method gets the same optimizer steps | epochs: the same epochs (the paper's protocol)
    partial_fill: float = 0.5  # fill+loss: class c is filled to n_c^(1−f)·T^f, i.e. a fraction f of the way to T in log scale
    fixed_subset: bool = False  # true: every seed uses data.seed's imbalanced subset (false: each seed draws its own)
    compare_to: list[str] = field(default_factory=lambda: ["none", "oversample", "real"])  # references of the paired comparisons
    real_fill: bool = True  # add the `real` row (the dropped images) wherever the profile drops images (issue 25)
    calibration_per_class: int = 200  # dropped images per class kept for novelty and the gate's real figures (≤ half; core.data.pool)
    classifier: dict = field(default_factory=dict)  # ClassifierConfig overrides for every classifier (epochs, lr, ...)
    classifier_overrides: dict = field(default_factory=dict)  # per-arch overrides, e.g. {"resnet50": {"batch_size": 128}}
    method_params: dict = field(default_factory=dict)  # generator kwargs per method, e.g. {"mixup": {"lam": 0.6}}
    cfg_train: dict = field(default_factory=dict)  # CFGTrainConfig overrides (preset, steps, batch_size, ...)
    cfg_sample: dict = field(default_factory=dict)  # CFGGenerator kwargs (sampler, steps, batch_size)
    generation_metrics: bool = True  # FID/KID (or the judge substitute) per method and seed
    gate: dict = field(default_factory=dict)  # [gate] thresholds over core.study.gate.DEFAULTS: tail_consistency, precision, near_copy_rate, tail_classes
    extractor: str = "auto"  # auto (Inception-v3 if its weights exist, else judge CNN) | inception | judge
    sd_on_cpu: bool = False  # allow Stable Diffusion fills without a GPU (very slow)
    curve_points: int = 4  # budget-curve points per classifier, the full run included (S/8, S/4, S/2, S: separate shorter runs; core.study.curves)
    converged_gain: float = 0.01  # accuracy (share): a row has converged when its last doubling of steps gained less
    converged_gain_minority: float = 0.02  # ... and gained less minority F1 than this (issue 25: both endpoints)
    device: str | None = None  # cpu | cuda | None (CUDA when available); not part of the study's identity
    cpu_lanes: int | None = None  # without a GPU and without --devices/--lanes/--ray: run cells on this many CPU worker processes,
                                  # the cores split between them (None = one process); not part of the study's identity

    @classmethod
    def from_dict(cls, d: dict) -> "StudyConfig":
        """Strict (core.settings.config_check): an unknown key anywhere is refused with the nearest valid name;
        types and ranges come from core.settings.bounds.CONFIG_BOUNDS; the nested tables are checked by validate()."""
        d = {k: v for k, v in dict(d).items() if k not in META_KEYS}  # kind, created, provenance: what a saved config.json adds
        d = check_table("study", d, field_types(cls), "study")
        if "data" in d:
            d["data"] = data_from_dict(d["data"]) if not isinstance(d["data"], DataConfig) else d["data"]
        cfg = cls(**d)
        cfg.validate()
        return cfg

    @classmethod
    def from_toml(cls, path: str | Path) -> "StudyConfig":
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"Study config {path} not found.", "Check the path, or use --study quick.")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}).", "Fix the syntax; see studies/quick.toml for an example.")
        except UnicodeDecodeError as exc:  # a binary file, or another encoding
            raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).", "Save the study as a UTF-8 .toml file.") from None
        except RecursionError:  # tomllib parses nested arrays and inline tables recursively: [[[[...]]]] a few hundred deep
            raise ConfigError(f"{path} nests arrays or tables too deeply to read.", "A study file nests at most a few levels; see studies/quick.toml.") from None
        metrics = raw.pop("metrics", None)
        if isinstance(metrics, dict):
            check_keys("[metrics]", metrics, ("generation", "extractor"))  # [metrics] generation = true, extractor = "auto"
            raw.setdefault("generation_metrics", metrics.pop("generation", True))
            if "extractor" in metrics:
                raw.setdefault("extractor", metrics.pop("extractor"))
            check_keys("[metrics]", metrics, ())  # what is left is unknown
        return cls.from_dict(raw)

    def validate(self) -> None:
        from core.metrics.generation import EXTRACTORS

        if self.data.dataset not in DATASETS:
            raise ConfigError(f"Unknown dataset '{self.data.dataset}'.", f"Choose one of: {', '.join(DATASETS)}.")
        from core.data.profiles import ORDERS, PROFILES

        if self.data.profile not in PROFILES:  # else the study starts and each cell fails on it
            raise ConfigError(f"Unknown profile '{str(self.data.profile)[:40]}'.", f"Choose one of: {', '.join(PROFILES)}.")
        if self.data.minority_order not in ORDERS:
            raise ConfigError(f"Unknown minority_order '{str(self.data.minority_order)[:40]}'.", f"Choose one of: {', '.join(ORDERS)}.")
        if not self.methods:
            raise ConfigError("No methods given.", f"Choose from: {', '.join(STUDY_METHODS)}.")
        for m in self.methods:
            parse_method(m)
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"Methods {self.methods} repeat a method.", "List each method once.")
        if POSTHOC in self.methods and "none" not in self.methods:
            raise ConfigError("posthoc-adjust adjusts the logits of the `none` model, which this study does not train.", "Add 'none' to methods.")
        if self.budget not in BUDGETS:
            raise ConfigError(f"Unknown budget '{self.budget}'.", "Use 'steps' (the same optimizer steps for every method) or 'epochs' (the paper's protocol).")
        if not 0.0 < float(self.partial_fill) <= 1.0:
            raise ConfigError(f"partial_fill={self.partial_fill} must be in (0, 1].", "Use 0.5: half-way (in log scale) towards the largest class.")
        if not isinstance(self.compare_to, list) or not all(isinstance(r, str) for r in self.compare_to):
            raise ConfigError(f"compare_to={self.compare_to!r} must be a list of method names.", 'Use e.g. compare_to = ["none", "oversample"].')
        bad = [c for c in self.classifiers if c not in ARCHS]
        if bad or not self.classifiers:
            raise ConfigError(f"Unknown classifier(s) {bad or '(none given)'}.", f"Choose from: {', '.join(ARCHS)}.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"Seeds {self.seeds} must be a non-empty list without repeats.", "Use e.g. seeds = [0, 1].")
        if any(parse_method(m)[0] == "cfg" for m in self.methods) and not self.cfg_ws:
            raise ConfigError("Method 'cfg' needs at least one guidance weight.", "Set cfg_ws = [0.1, 7.5] (the paper's w).")
        if any(not math.isfinite(float(w)) or float(w) < 0 for w in self.cfg_ws):
            raise ConfigError(f"Guidance weights {self.cfg_ws} must be finite and >= 0.", "Use the paper's w, e.g. [0.1, 7.5] (w = 0 is plain conditional).")
        if self.extractor not in EXTRACTORS:
            raise ConfigError(f"Unknown extractor '{self.extractor}'.", f"Choose one of: {', '.join(EXTRACTORS)}.")
        self._check_tables()
        if isinstance(self.calibration_per_class, bool) or not isinstance(self.calibration_per_class, int) or self.calibration_per_class < 0:
            raise ConfigError(f"calibration_per_class={self.calibration_per_class!r} must be a whole number >= 0.",
                              "Use 200: up to 200 dropped images per class (never more than half) calibrate the gate and novelty.")
        if self.cpu_lanes is not None and (not isinstance(self.cpu_lanes, int) or not 1 <= self.cpu_lanes <= 64):
            raise ConfigError(f"cpu_lanes={self.cpu_lanes} must be a whole number from 1 to 64.", "Use 2 on a 2-core machine, or leave it out.")
        if not isinstance(self.curve_points, int) or not 2 <= self.curve_points <= 6:
            raise ConfigError(f"curve_points={self.curve_points} must be a whole number from 2 to 6.",
                              "Use 4: runs of S/8, S/4, S/2 and S steps (the last doubling decides convergence).")
        if not (math.isfinite(float(self.converged_gain)) and 0.0 < float(self.converged_gain) <= 0.2):
            raise ConfigError(f"converged_gain={self.converged_gain} must be in (0, 0.2] (a share of accuracy).",
                              "Use 0.01: the last doubling of steps must gain less than 1 accuracy point.")
        if not (math.isfinite(float(self.converged_gain_minority)) and 0.0 < float(self.converged_gain_minority) <= 0.5):
            raise ConfigError(f"converged_gain_minority={self.converged_gain_minority} must be in (0, 0.5] (minority F1).",
                              "Use 0.02: the last doubling of steps must gain less than 0.02 minority F1.")

    def _check_tables(self) -> None:
        """Every nested table, key by key (core.settings.config_check): [classifier] and each per-classifier override
        (also as applied over [classifier]), [cfg_train], [cfg_sample], [method_params.*] and [gate]."""
        from core.study.gate import DEFAULTS as GATE
        from core.train.cfg_unet import CFGTrainConfig
        from core.train.classifier import ClassifierConfig

        clf = field_types(ClassifierConfig)
        set_by_study = ("data", "arch", "seed", "device", "loss")  # a cell's own: its data, classifier, seed, device and the method's loss
        check_table("[classifier]", self.classifier, clf, "classifier", drop=set_by_study)
        if not isinstance(self.classifier_overrides, dict):
            raise ConfigError(f"classifier_overrides = {self.classifier_overrides!r} must be a table.", "Write e.g. [classifier_overrides.resnet50].")
        check_keys("classifier_overrides", self.classifier_overrides, ARCHS)
        for arch, over in self.classifier_overrides.items():
            check_table(f"[classifier_overrides.{arch}]", over, clf, "classifier", drop=set_by_study)
            check_table(f"[classifier] with [classifier_overrides.{arch}] applied", {**self.classifier, **over}, clf, "classifier", drop=set_by_study)
        check_table("[cfg_train]", self.cfg_train, field_types(CFGTrainConfig), "cfg_train", drop=("data", "seed", "device"))
        check_kwargs("cfg_sample", self.cfg_sample)
        if not isinstance(self.method_params, dict):
            raise ConfigError(f"method_params = {self.method_params!r} must be a table.", "Write e.g. [method_params.mixup] lam = 0.6.")
        check_keys("method_params", self.method_params, METHODS)
        for m, params in self.method_params.items():
            check_kwargs(f"method_params.{m}", params)
        gate_types = {k: "int" if k == "tail_classes" else "float" for k in GATE}
        if isinstance(self.gate, dict):
            check_keys("[gate]", self.gate, gate_types)
        thresholds(self.gate)  # the gate's own value checks (its words), then the one table's ranges
        check_table("[gate]", self.gate if self.gate is not None else {}, gate_types, "gate")

    def study_methods(self) -> list[str]:
        """``methods`` plus `real` (after `none`) when real_fill is on and the profile drops images."""
        ms = list(self.methods)
        if self.real_fill and REAL_FILL not in ms and self.data.profile != "full":
            ms.insert(ms.index("none") + 1 if "none" in ms else 0, REAL_FILL)
        return ms

    def variants(self) -> list[Variant]:
        """Every row's Variant, one per w for the cfg fills."""
        out = []
        for m in self.study_methods():
            fill, loss = parse_method(m)
            ws = [float(w) for w in self.cfg_ws] if fill == "cfg" else [None]
            for w in ws:
                base = cfg_name(w) if fill == "cfg" else fill
                name = base if loss == "ce" else (loss if fill == "none" else f"{base}+{loss}")
                out.append(Variant(name, fill, w, loss, partial=fill != "none" and loss != "ce"))
        return out

    def data_for_seed(self, seed: int) -> DataConfig:
        """The seed's imbalanced subset: the images kept follow the seed, the minority classes data.seed."""
        return DataConfig.from_dict({**self.data.to_dict(), "subset_seed": None if self.fixed_subset else int(seed)})

    def identity(self) -> dict:
        """What must match for a folder to be resumed as this study (device excluded)."""
        d = json.loads(json.dumps(self.to_dict(), default=str))
        d.pop("device", None)
        d.pop("cpu_lanes", None)
        # The gate's thresholds are applied when rows are built (core.study.gate.row_gate, over the figures each fill
        # stored), so a finished study can be re-gated by resuming it with other thresholds; only which classes
        # are measured (tail_classes) changes the cells. The defaults spelled out or left out are the same study.
        d["gate"] = {"tail_classes": thresholds(d.get("gate"))["tail_classes"]}
        return d
