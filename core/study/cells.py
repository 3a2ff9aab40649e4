"""The work of one study cell (``run_cell``, the core.study.graph contract): CFG training, fills with
their gate and novelty, classifiers with their budget curves, the post-hoc adjustment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from core.store.atomic import atomic_write, atomic_write_json, read_json
from core.callbacks import Callbacks
from core.study.graph import Cell
from core.data.imageset import ImageSet
from core.errors import Cancelled, LabError, Unavailable
from core.study.gate import GATED_FILLS, thresholds
from core.study.config import POSTHOC, REAL_FILL, StudyConfig
from core.study.plan import cell_dir, cell_id, cfg_run_dir, classifier_overrides, read_cell_result, sets_path

def save_generated(path: Path, part: ImageSet) -> None:
    from safetensors.torch import save_file

    tensors = {"images": part.images.contiguous(), "labels": part.labels.contiguous()}
    if part.soft_labels is not None:
        tensors["soft_labels"] = part.soft_labels.float().contiguous()
    meta = {"provenance": json.dumps(part.provenance.tolist()), "classes": json.dumps(part.classes)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_generated(path: Path) -> ImageSet | None:
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


class _Context:
    """What the cells of one study share in one process: the config, the dataset, the extractor."""

    def __init__(self, payload: dict):
        from core.data.loading import load_dataset
        from core.metrics.classification import check_test_classes

        self.cfg = StudyConfig.from_dict(payload["config"])
        self.root = Path(payload["root"])
        self.specs = payload["specs"]
        self.ds = load_dataset(self.cfg.data)
        check_test_classes(self.ds.test.labels, self.ds.test.num_classes, self.ds.test.classes)
        self._imbalanced: dict[int, ImageSet] = {}
        self._pools: dict[int, tuple[ImageSet, ImageSet]] = {}
        self.extractor, self.extractor_note, self.judge = None, "", None

    def imbalanced(self, seed: int) -> ImageSet:
        from core.data.profiles import apply_profile

        if seed not in self._imbalanced:
            self._imbalanced[seed] = apply_profile(self.ds.train, self.cfg.data_for_seed(seed))
        return self._imbalanced[seed]

    def pool(self, seed: int) -> tuple[ImageSet, ImageSet]:
        """(held-out part, fill part) of the images this seed's profile dropped (core.data.pool)."""
        from core.data.pool import split_pool
        from core.data.profiles import dropped_by_profile

        if seed not in self._pools:
            self._pools[seed] = split_pool(dropped_by_profile(self.ds.train, self.cfg.data_for_seed(seed)), seed, self.cfg.calibration_per_class)
        return self._pools[seed]

    def get_judge(self, device: str, cb: Callbacks):
        """The dataset's judge CNN (core.metrics.judge, trained once and cached in models/judges), kept for the next cells."""
        if self.judge is None:
            from core.metrics.judge import get_judge

            self.judge = get_judge(self.cfg.data, device, progress=lambda d, n, m="": cb.progress(d, n, f"gate judge: {m}"))
        return self.judge

    def get_extractor(self, device: str, cb: Callbacks):
        if self.extractor is None:
            from core.metrics.generation import get_extractor

            self.extractor, self.extractor_note = get_extractor(self.cfg.extractor, self.cfg.data, device,
                                                                progress=lambda d, t, m="": cb.progress(d, t, f"feature extractor: {m}"))
        return self.extractor


_CONTEXTS: dict[str, _Context] = {}  # one per study folder in this process (a worker keeps its dataset between cells)


def _context(payload: dict) -> _Context:
    key = json.dumps([payload["root"], payload["config"]], sort_keys=True, default=str)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = _Context(payload)
    return _CONTEXTS[key]


def run_cell(payload: dict, cell: Cell, device: str, callbacks: Callbacks) -> dict:
    """The work of one study cell (the core.study.graph contract). Its result is saved as
    cells/<id>/results.json; a cell that finished before returns it at once."""
    done = read_cell_result(Path(payload["root"]), cell.id)
    if done is not None:
        return done
    ctx = _context(payload)
    spec = ctx.specs[cell.id]
    work = {"cfg-train": _cfg_train_cell, "fill": _fill_cell, "classifier": _classifier_cell, "posthoc": _posthoc_cell}[cell.kind]
    res = work(ctx, spec, device, callbacks)
    if cell.kind != "classifier":  # a classifier run writes its own results.json (last, atomically)
        atomic_write_json(cell_dir(ctx.root, cell.id) / "results.json", res)
    return res


def _cfg_train_cell(ctx: _Context, spec: dict, device: str, cb: Callbacks) -> dict:
    try:
        import core.generators.cfg  # noqa: F401  (a CFG model is trained only if it can be sampled here)
        from core.train.cfg_unet import CFGTrainConfig, train_cfg
    except ImportError as exc:
        raise Unavailable(f"CFG generator not available ({type(exc).__name__}: {exc}).", "Install the lab's requirements (diffusers).")
    seed, run_dir = spec["seed"], cfg_run_dir(ctx.root, spec["seed"])
    if (read_json(run_dir / "status.json") or {}).get("state") != "done":
        tc = CFGTrainConfig.from_dict({**ctx.cfg.cfg_train, "data": ctx.cfg.data_for_seed(seed).to_dict(), "seed": seed, "device": device})
        train_cfg(tc, run_dir, callbacks=cb, resume=(run_dir / "config.json").exists())
        if cb.stop_requested():
            raise Cancelled("study cancelled during CFG training")
    return {"run_dir": str(run_dir), "seed": seed}


def _generator(ctx: _Context, fill: str, w: float | None, train: ImageSet, seed: int, device: str):
    """The generator of a fill; Unavailable when it cannot run on this machine."""
    params = dict(ctx.cfg.method_params.get(fill, {}))
    if fill == "cfg":
        try:
            from core.generators.cfg import CFGGenerator
        except ImportError as exc:
            raise Unavailable(f"CFG generator not available ({type(exc).__name__}: {exc}).", "Install the lab's requirements (diffusers).")
        return CFGGenerator(cfg_run_dir(ctx.root, seed), w=w, device=device, classes=train.classes, channels=train.channels,
                            image_size=train.image_size, **ctx.cfg.cfg_sample)
    if fill == "sd":
        try:
            from core.generators.sd import SDGenerator, sd_available
        except ImportError as exc:
            raise Unavailable(f"Stable Diffusion generator not available ({type(exc).__name__}: {exc}).", "Install the lab's requirements (diffusers, transformers).")
        ok, reason = sd_available(params.get("model", "stable-diffusion-v1-5/stable-diffusion-v1-5"))
        if not ok:
            raise Unavailable(f"Stable Diffusion weights missing: {reason}")
        if not str(device).startswith("cuda") and not ctx.cfg.sd_on_cpu:
            raise Unavailable("Stable Diffusion needs a GPU here (512 px sampling takes minutes per image on CPU).", "Run on a GPU, or set sd_on_cpu = true to force it.")
        return SDGenerator(classes=train.classes, channels=train.channels, image_size=train.image_size, device=device, **params)
    from core.generators.registry import build_generator

    return build_generator(fill, train, **params)


def _fill_cell(ctx: _Context, spec: dict, device: str, cb: Callbacks) -> dict:
    """Fill every class to the target with the seed's generator, save the generated images and
    measure the filled set. The result dict is the fill's row: more generation metrics go here."""
    from core.generators.balance import balance

    seed, name, imbalanced = spec["seed"], spec["name"], ctx.imbalanced(spec["seed"])
    path = sets_path(ctx.root, name, seed)
    filled, extra = imbalanced, {}
    if spec["fill"] == REAL_FILL:  # the dropped images' fill part: the bound (core.data.pool)
        from core.data.pool import real_fill

        target = int(ctx.cfg.target) if ctx.cfg.target is not None else max(imbalanced.counts())
        part, used, want = real_fill(imbalanced, ctx.pool(seed)[1], target)
        save_generated(path, part)
        extra = {"real_used": used, "real_wanted": want}
        filled = ImageSet.concat([imbalanced, part]) if len(part) else imbalanced
    elif spec["fill"] != "none":
        part = load_generated(path)
        if part is None:
            gen = _generator(ctx, spec["fill"], spec["w"], imbalanced, seed, device)
            full = balance(imbalanced, gen, ctx.cfg.target, seed=seed, progress=lambda d, t: cb.progress(d, t, f"generated {d}/{t}"),
                           should_stop=cb.should_stop)
            part = full.subset(torch.arange(len(imbalanced), len(full)))
            save_generated(path, part)
        filled = ImageSet.concat([imbalanced, part]) if len(part) else imbalanced
    result = {"fill": spec["fill"], "name": name, "seed": seed, "n_generated": len(filled) - len(imbalanced), "counts": filled.counts(), **extra}
    if ctx.cfg.generation_metrics:
        from core.metrics.generation import generation_metrics

        ex = ctx.get_extractor(device, cb)
        cb.progress(0, 1, ex.label)
        result["generation"] = {**generation_metrics(ex, ctx.ds.train, f"{ctx.ds.name}-train", filled, seed=seed), "note": ctx.extractor_note}
        if spec["fill"] != "none" and len(filled) > len(imbalanced):
            result["novelty"] = _novelty(ctx, filled.subset(torch.arange(len(imbalanced), len(filled))), imbalanced, seed, ex)
    if spec["fill"] in GATED_FILLS:
        generated = filled.subset(torch.arange(len(imbalanced), len(filled)))
        result["gate"] = _gate(ctx, generated, result.get("novelty"), seed, device, cb)
        if spec.get("partial_sizes") and ctx.cfg.generation_metrics:  # a partial fill is gated on the images it uses
            from core.study.gating import partial_part

            used = partial_part(generated, imbalanced.counts(), spec["partial_sizes"])
            nov = _novelty(ctx, used, imbalanced, seed, ctx.get_extractor(device, cb)) if len(used) else None
            result["gate_partial"] = _gate(ctx, used, nov, seed, device, cb)
    return result


def _gate(ctx: _Context, generated: ImageSet, novelty: dict | None, seed: int, device: str, cb: Callbacks) -> dict:
    """The gate of one fill and seed (core.study.gate), calibrated on this seed's held-out real images (core.study.gating)."""
    from core.study.gate import gate_verdict, not_measured
    from core.study.gating import measure

    if not ctx.cfg.generation_metrics:
        return not_measured("generation_metrics = false")
    if novelty is None or not len(generated):
        return not_measured("no image was generated (every class already holds the target)")
    t = thresholds(ctx.cfg.gate)
    figures = measure(generated, ctx.pool(seed)[0], novelty, ctx.get_judge(device, cb), ctx.get_extractor(device, cb), t, seed)
    return gate_verdict(figures, t)


def _novelty(ctx: _Context, generated: ImageSet, imbalanced: ImageSet, seed: int, extractor) -> dict:
    """Near-copy rate (pixel space) and precision/recall (extractor features) of the generated
    images against held-out real ones: the held-out part of the images this seed's profile dropped
    (core.data.pool; never the test split, core.metrics.novelty states the rule)."""
    from core.metrics.novelty import fill_scores, held_out_from

    held_out, source = held_out_from(ctx.pool(seed)[0])  # the pool's held-out part: never an image `real` fills with
    return {**fill_scores(generated, imbalanced, held_out, extractor, seed=seed, flips=trains_with_flips(ctx.cfg, imbalanced)),
            "held_out_source": source}


def trains_with_flips(cfg: StudyConfig, train: ImageSet) -> bool:
    """Whether the study's CFG generator sees mirrored images (CFGTrainConfig.hflip: None = RGB
    on, grayscale off). Every fill of the study is then searched with flips, so the near-copy
    rates of all fills are measured alike."""
    hflip = cfg.cfg_train.get("hflip")
    return bool(hflip) if hflip is not None else train.channels == 3


def _train_set(ctx: _Context, spec: dict) -> ImageSet:
    """The imbalanced subset, plus that seed's generated images: all of them, or for a partial
    fill the first k_c − n_c of each class (the generators are deterministic per image index)."""
    imbalanced = ctx.imbalanced(spec["seed"])
    if spec["fill"] == "none":
        return imbalanced
    part = load_generated(sets_path(ctx.root, spec["fill_name"], spec["seed"]))
    if part is None:
        raise LabError(f"The generated images of {spec['fill_name']} (seed {spec['seed']}) are missing or damaged.",
                       "Resume the study: the fill cell runs again.")
    if spec["partial"]:
        from core.study.gating import partial_part

        part = partial_part(part, imbalanced.counts(), spec["sizes"])
    return ImageSet.concat([imbalanced, part]) if len(part) else imbalanced


def curve_figures(r: dict) -> dict:
    """A curve point's accuracy and minority F1: the run's validation figures where the study has a
    validation split (issue 25: the curves and convergence never read the test split), else its test figures."""
    v = r.get("validation") or {}
    src = v if v.get("accuracy") is not None else r
    return {"accuracy": src["accuracy"], "minority_f1": src.get("minority_f1"), "split": "validation" if src is v else "test"}


def _classifier_cell(ctx: _Context, spec: dict, device: str, cb: Callbacks) -> dict:
    """The row's classifier for one seed, after its budget curve: the same recipe run for
    S/8, S/4, S/2 steps (core.study.curves: separate shorter runs), each in curves/<cell id>/steps<k>/.
    On a GPU the four runs train as one batched computation (core.train.batched; the short ones
    leave it first); on a CPU one after the other. Either way each run writes the same files."""
    from core.generators.balance import train_set_info
    from core.study.curves import curve_steps, scaled_warmup
    from core.train.batched import BatchJob, train_runs
    from core.train.classifier import ClassifierConfig, schedule

    cfg, seed, w = ctx.cfg, spec["seed"], spec["w"]
    over = {**classifier_overrides(cfg, spec["classifier"]), **spec["budget"]}  # budget "steps": the study's steps and warm-up
    ccfg = ClassifierConfig.from_dict({**over, "data": cfg.data_for_seed(seed).to_dict(), "arch": spec["classifier"], "seed": seed,
                                       "device": device, "loss": spec["loss"]})
    info = train_set_info(spec["fill"], {"w": w} if w is not None else dict(cfg.method_params.get(spec["fill"], {})), cfg.target)
    info.update(study_method=spec["variant"], partial_fill=cfg.partial_fill if spec["partial"] else None)
    cid = cell_id("clf", spec["variant"], spec["classifier"], seed)
    train_set, folder = _train_set(ctx, spec), cell_dir(ctx.root, cid)
    full = schedule(ccfg, len(train_set))
    jobs = [BatchJob(ClassifierConfig.from_dict({**ccfg.to_dict(), "steps": k, "warmup_steps": scaled_warmup(full["warmup_steps"], k, full["steps"])}),
                     ctx.root / "curves" / cid / f"steps{k}", train_set, info, validation=ctx.ds.validation)
            for k in curve_steps(full["steps"], cfg.curve_points)[:-1]]
    point = lambda r: {"steps": int(r["steps"]), **curve_figures(r), "run_dir": r["run_dir"]}  # noqa: E731
    jobs.append(BatchJob(ccfg, folder, train_set, info, extra_results=lambda done: {"curve": [point(r) for r in done[:-1]]},
                         validation=ctx.ds.validation))
    # the curve's runs and the main run: one batched computation where core.train.batched says it pays, else one after the other
    runs = train_runs(jobs, ctx.ds, cb)
    if any(r is None or r.get("cancelled") for r in runs):
        raise Cancelled("study cancelled during classifier training")
    return runs[-1]


def _posthoc_cell(ctx: _Context, spec: dict, device: str, cb: Callbacks) -> dict:
    """Menon et al. 2021 §4: the `none` model's saved test logits, argmax_c (z_c − τ·log π_c); its
    budget curve adjusts the logits of `none`'s shorter runs the same way."""
    from safetensors.torch import load_file

    from core.metrics.classification import classification_report
    from core.train.classifier import ClassifierConfig, save_test_logits
    from core.train.losses import adjusted_logits

    src = cell_dir(ctx.root, cell_id("clf", "none", spec["classifier"], spec["seed"]))
    base, path = read_cell_result(ctx.root, src.name), src / "test_logits.safetensors"
    if base is None or not path.exists():
        raise LabError(f"posthoc-adjust needs the finished `none` run in {src} with its test logits.", "Resume the study so the `none` cell runs first.")
    tau = ClassifierConfig.from_dict(classifier_overrides(ctx.cfg, spec["classifier"])).la_tau

    def adjusted(logits_path: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
        t = load_file(str(logits_path))
        logits = adjusted_logits(t["logits"], base["train_counts"], tau)
        rep = classification_report(t["labels"], logits.argmax(-1), ctx.ds.test.num_classes, base.get("minority_classes"), ctx.ds.test.classes)
        return logits, t["labels"], rep

    split = "validation" if ctx.ds.validation is not None else "test"  # the curve reads the split `none`'s curve read
    curve = []
    for p in base.get("curve") or []:
        lp = Path(p["run_dir"]) / f"{split}_logits.safetensors"
        if not lp.exists():
            raise LabError(f"posthoc-adjust's budget curve needs the {split} logits of `none`'s {p['steps']}-step run ({lp}).",
                           "Delete that `none` cell's folder and resume the study: it runs again with its curve.")
        rep_k = adjusted(lp)[2]
        curve.append({"steps": p["steps"], "accuracy": rep_k["accuracy"], "minority_f1": rep_k.get("minority_f1"), "split": split,
                      "run_dir": p["run_dir"]})
    logits, labels, rep = adjusted(path)
    validation = None
    if split == "validation":
        vrep = adjusted(src / "validation_logits.safetensors")[2]
        validation = {"accuracy": vrep["accuracy"], "minority_f1": vrep.get("minority_f1"), "n": len(ctx.ds.validation)}
    own = cell_dir(ctx.root, cell_id("clf", spec["variant"], spec["classifier"], spec["seed"]))
    own.mkdir(parents=True, exist_ok=True)
    save_test_logits(own, logits, labels)  # its own per-image results, for the paired verdicts
    keep = ("classes", "arch", "epochs", "steps", "batch_size", "images_seen", "train_size", "epochs_run", "test_size", "train_images",
            "train_counts", "imbalanced_counts", "device", "precision")
    return {**{k: base.get(k) for k in keep}, **rep, "loss": POSTHOC, "study_method": POSTHOC, "la_tau": tau, "adjusted_run": str(src),
            "run_dir": str(own), "curve": curve, "validation": validation}
