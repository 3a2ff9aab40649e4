"""The pieces of one classifier run that ``train_classifier`` (one model) and
``core.train.batched`` (several models as one computation) share, so both write the same
files: the step schedule, the run folder and data set-up, the per-epoch bookkeeping
(metrics row, checkpoint, status) and the final evaluation (test logits, results.json).
The config is a ``core.train.classifier.ClassifierConfig`` (this module sits below it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.store.atomic import atomic_write_json, read_json
from core.train.augment import BatchAugment, BatchMix, channel_stats
from core.callbacks import Callbacks
from core.store.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from core.data.imageset import REAL, ImageSet, LoadedDataset
from core.errors import ConfigError, TrainingError
from core.metrics.classification import check_test_classes, classification_report
from core.nets.resnet import build_classifier
from core.train.losses import REDUCTION, ClassifierLoss
from core.store.runs import Run

KIND = "classifier"
GLYPH_DATASETS = ("digits", "mnist")  # a mirrored digit is another glyph: no flips


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine to 0:
    lr(t) = peak·(t+1)/W for t < W;  lr(t) = peak·½(1 + cos(π·(t−W)/(T−W))) otherwise."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def schedule(cfg, n: int) -> dict:
    """The steps a run on n images takes: batch b = min(batch_size, n), ⌊n/b⌋ steps an epoch (the
    remainder is dropped: equal batches keep BatchNorm stable), T = steps or epochs·⌊n/b⌋ in all,
    warm-up W = warmup_steps or round(warmup_epochs·⌊n/b⌋); the LR schedule spans exactly T."""
    bs = min(cfg.batch_size, n)
    spe = max(1, n // bs)
    total = int(cfg.steps) if cfg.steps is not None else cfg.epochs * spe
    warmup = int(cfg.warmup_steps) if cfg.warmup_steps is not None else int(round(cfg.warmup_epochs * spe))
    return {"steps": total, "batch_size": bs, "steps_per_epoch": spe, "warmup_steps": warmup, "images_seen": total * bs, "train_size": n}


def _train_summary(train: ImageSet) -> dict:
    return {"n": len(train), "counts": train.counts(), "counts_by_provenance": train.counts_by_provenance(), "soft_labels": train.soft_labels is not None}


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, aug: BatchAugment, device, batch_size: int = 1024) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = aug.normalise(images[i : i + batch_size].to(device, non_blocking=True))
        x = x.to(next(model.parameters()).dtype) if next(model.parameters()).dtype == torch.float64 else x
        out.append(model(x).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def predict(model: torch.nn.Module, images: torch.Tensor, aug: BatchAugment, device, batch_size: int = 1024) -> torch.Tensor:
    return predict_logits(model, images, aug, device, batch_size).argmax(-1)


def eval_subsample(n_test: int, k: int) -> torch.Tensor:
    """The fixed test images used for in-training evaluations: k of n_test, the same for every run."""
    if k <= 0 or k >= n_test:
        return torch.arange(n_test)
    return torch.sort(torch.randperm(n_test, generator=torch.Generator().manual_seed(12345))[:k]).values


def save_test_logits(run_dir: Path, logits: torch.Tensor, labels: torch.Tensor, name: str = "test_logits.safetensors") -> None:
    """run_dir/test_logits.safetensors: the final model's test-set logits (for the post-hoc logit adjustment
    and the paired verdicts); ``name`` validation_logits.safetensors for the validation split's."""
    from safetensors.torch import save_file

    from core.store.atomic import atomic_write

    tensors = {"logits": logits.float().contiguous(), "labels": labels.long().contiguous()}
    atomic_write(run_dir / name, lambda tmp: save_file(tensors, tmp))


def _same_config(saved: dict, cfg, info: dict) -> bool:
    cur = {**cfg.to_dict(), **info}
    return all(saved.get(k) == v for k, v in cur.items() if k not in ("device", "log_with"))


# ---------------------------------------------------------------------------- one run's pieces
@dataclass
class RunSetup:
    """What one classifier run trains on and where it writes (shared by ``train_classifier`` and
    ``core.train.batched``, so both write the same files)."""

    cfg: Any  # a core.train.classifier.ClassifierConfig (that module imports this one)
    run_dir: Path
    run: Run
    ds: LoadedDataset
    train_set: ImageSet
    train_set_info: dict
    config: dict  # what config.json and the checkpoints hold
    plan: dict  # schedule(cfg, n)
    imb_counts: list[int]
    minority: list[int]
    images: torch.Tensor  # uint8, on the device
    targets: torch.Tensor  # soft or one-hot, on the device
    weights: torch.Tensor  # per-image loss weights, on the device
    aug: BatchAugment
    mix: BatchMix | None
    loss_fn: ClassifierLoss
    eval_idx: torch.Tensor  # of eval_set
    # a study's validation split (core.data.loading): the in-training evaluations read it instead of the
    # test subsample, and the final figures on it go to results["validation"]; None = the test split
    validation: ImageSet | None = None

    @property
    def eval_set(self) -> ImageSet:
        return self.validation if self.validation is not None else self.ds.test  # a study decides on validation, never on test images

    @property
    def dtype(self) -> torch.dtype:  # of the weights and the augmented inputs
        return torch.float64 if self.cfg.precision == "fp64" else torch.float32

    @property
    def n_epochs(self) -> int:
        return math.ceil(self.plan["steps"] / self.plan["steps_per_epoch"])  # the last one may be partial


def prepare_run(cfg, run_dir: str | Path, resume: bool, train_set: ImageSet | None, dataset: LoadedDataset | None,
                train_set_info: dict | None, device, main: bool = True, wait=lambda: None, validation: ImageSet | None = None) -> RunSetup | dict:
    """Check the config, open the run folder and put the data on ``device``; a run that finished
    before (resume) returns its results.json instead."""
    from core.data.loading import load_dataset
    from core.data.profiles import apply_profile, most_reduced_classes, target_counts

    cfg.validate()
    if train_set_info is None:
        train_set_info = {"balance_method": "none", "balance_params": {}, "balance_target": None} if train_set is None else {}
    clash = sorted(set(train_set_info) & (set(cfg.to_dict()) | {"kind", "created", "train_set"}))
    if clash:
        raise ConfigError(f"train_set_info repeats config key(s) {', '.join(clash)}.", "Describe the training set with other keys (e.g. balance_method).")
    run_dir = Path(run_dir)
    ds = dataset if dataset is not None else load_dataset(cfg.data)
    check_test_classes(ds.test.labels, ds.test.num_classes, ds.test.classes)
    imb_counts = target_counts(ds.train.counts(), cfg.data)
    minority = most_reduced_classes(imb_counts, ds.train.counts())
    if train_set is None:
        train_set = apply_profile(ds.train, cfg.data)
    if train_set.classes != ds.test.classes:
        raise ConfigError("The training set's classes differ from the test set's.", "Build the training set from the same dataset config.")
    plan = schedule(cfg, len(train_set))
    config = {**cfg.to_dict(), **train_set_info, "train_set": _train_summary(train_set), "schedule": plan}

    # -- run folder -----------------------------------------------------------------
    run = Run(run_dir)
    saved = read_json(run_dir / "config.json")
    if saved is not None and resume and saved.get("kind") == KIND and not _same_config(saved, cfg, train_set_info):
        raise ConfigError(f"{run_dir} holds a classifier run with a different config.", "Resume with the same settings, or choose a new run folder.")
    done = read_json(run_dir / "results.json")
    if resume and done is not None and run.status.get("state") == "done":
        return done  # finished before: nothing to redo
    if main:
        run = Run.open_or_create(run_dir, KIND, config, resume=resume)
    wait()

    # -- data on the device -------------------------------------------------------
    images = train_set.images.to(device)
    targets = train_set.soft_or_onehot().to(device)
    weights = torch.ones(len(train_set))
    weights[torch.from_numpy(train_set.provenance != REAL)] = float(cfg.synthetic_weight)
    weights = weights.to(device)
    if float(weights.sum()) <= 0:
        raise ConfigError("Every training image has weight 0.", "Set synthetic_weight > 0 or include real images.")
    mean, std = channel_stats(ds.train.images)
    pad = cfg.augment_pad if cfg.augment_pad is not None else max(1, train_set.image_size // 8)
    flip = cfg.augment_flip if cfg.augment_flip is not None else cfg.data.dataset not in GLYPH_DATASETS
    aug = BatchAugment(mean, std, pad=pad, flip=flip)
    mix = BatchMix(cfg.train_mix, cfg.mix_alpha) if cfg.train_mix != "none" else None
    # the loss uses the class counts of the set it trains on (after any fill)
    loss_fn = ClassifierLoss(cfg.loss, train_set.counts(), cfg.cb_beta, cfg.la_tau, cfg.label_smoothing).to(device)
    return RunSetup(cfg, run_dir, run, ds, train_set, train_set_info, config, plan, imb_counts, minority, images, targets, weights,
                    aug, mix, loss_fn, eval_subsample(len(validation if validation is not None else ds.test), cfg.eval_subsample), validation)


def new_model(su: RunSetup, resume: bool):
    """The run's model (seeded by cfg.seed), SGD and LR schedule, and (epoch, step) to start from:
    the last checkpoint's when resuming."""
    cfg, plan = su.cfg, su.plan
    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.arch, su.train_set.num_classes, su.train_set.channels, cfg.cifar_stem).to(su.dtype)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    total, warmup = plan["steps"], plan["warmup_steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, warmup, cfg.lr) / cfg.lr)
    start_epoch, step = 0, 0
    ckpt = checkpoint_path(su.run.checkpoints) if resume else None
    if ckpt is not None:
        w, state, _ = load_checkpoint(ckpt)
        model.load_state_dict(w)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
    return model, opt, sched, start_epoch, step


def non_finite(su: RunSetup, loss: float, epoch: int, step: int, main: bool = True) -> TrainingError:
    if main:
        su.run.set_status("failed", error="non-finite loss", message=f"loss became {loss} at step {step}")
    return TrainingError(f"The classifier's loss became non-finite ({loss}) at epoch {epoch + 1}, step {step}.",
                         f"Lower the learning rate (now {su.cfg.lr}) or the batch size; resume starts from the last good checkpoint.")


def end_epoch(su: RunSetup, epoch: int, step: int, row: dict, model: torch.nn.Module, opt, sched, cb: Callbacks, device,
              el: float, steps_this_session: int, main: bool = True) -> None:
    """After an epoch: the in-training evaluation, the metrics row, the checkpoint, the status."""
    cfg, n_epochs, total = su.cfg, su.n_epochs, su.plan["steps"]
    last = epoch + 1 == n_epochs
    if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0) and not last:
        # a fixed subsample of the validation (else test) split while training; the full test set once, at the end
        ev = su.eval_set
        pred = predict(model, ev.images[su.eval_idx], su.aug, device)
        rep = classification_report(ev.labels[su.eval_idx], pred, su.ds.test.num_classes, su.minority)
        split = "validation" if su.validation is not None else "test"
        row.update({f"{split}_accuracy": rep["accuracy"], f"{split}_macro_f1": rep["macro_f1"], f"{split}_images": len(su.eval_idx)})
    if main:
        su.run.log_metrics(row)
        cb.metrics(row)
        if last or (cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0):
            state = {"epoch": epoch + 1, "step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
            save_checkpoint(su.run.checkpoints, "latest", model.state_dict(), state, su.config)
        su.run.set_status("running", epoch=epoch + 1, step=step, total=total, eta_s=el / max(steps_this_session, 1) * (total - step),
                          message=f"epoch {epoch + 1}/{n_epochs}, loss {row['loss']:.3f}")


def finish_run(su: RunSetup, model: torch.nn.Module, step: int, last_loss: float, device, precision: str,
               extra_results: dict | None, main: bool = True) -> dict:
    """The final evaluation on the full test set: test logits, results.json, the last status."""
    cfg, ds, train_set, run, n_epochs = su.cfg, su.ds, su.train_set, su.run, su.n_epochs
    bs = su.plan["batch_size"]
    logits = predict_logits(model, ds.test.images, su.aug, device)
    rep = classification_report(ds.test.labels, logits.argmax(-1), ds.test.num_classes, su.minority, ds.test.classes)
    rows = run.metrics() if main else None
    ips = rows["images_per_s"].tolist() if rows is not None and "images_per_s" in rows else []
    result = {
        **rep,
        "classes": ds.test.classes,
        "arch": cfg.arch,
        "epochs": cfg.epochs,
        "steps": int(step),  # optimizer steps run
        "batch_size": int(bs),
        "images_seen": int(step * bs),  # images drawn for training (each step draws bs)
        "train_size": len(train_set),
        "epochs_run": step * bs / max(len(train_set), 1),  # images_seen / train_size
        "loss": cfg.loss,
        "loss_reduction": REDUCTION,
        "test_size": len(ds.test),
        "final_loss": last_loss,
        "train_images": len(train_set),
        "train_counts": train_set.counts(),
        "imbalanced_counts": su.imb_counts,
        "train_set_info": su.train_set_info,
        "images_per_s": float(np.median(ips)) if ips else None,
        "device": str(device),
        "precision": precision,
        "run_dir": str(su.run_dir),
    }
    if su.validation is not None:
        val_logits = predict_logits(model, su.validation.images, su.aug, device)
        vrep = classification_report(su.validation.labels, val_logits.argmax(-1), ds.test.num_classes, su.minority)
        result["validation"] = {"accuracy": vrep["accuracy"], "minority_f1": vrep["minority_f1"], "n": len(su.validation)}
    clash = sorted(set(extra_results or {}) & set(result))
    if clash:
        raise ConfigError(f"extra_results repeats result key(s) {', '.join(clash)}.", "Name the caller's keys differently.")
    result.update(extra_results or {})
    if main:
        save_test_logits(su.run_dir, logits, ds.test.labels)
        if su.validation is not None:
            save_test_logits(su.run_dir, val_logits, su.validation.labels, name="validation_logits.safetensors")
        atomic_write_json(su.run_dir / "results.json", result)
        run.log_metrics({"epoch": n_epochs, "step": step, "final": True, "test_accuracy": rep["accuracy"], "test_macro_f1": rep["macro_f1"]})
        run.set_status("done", epoch=n_epochs, step=step, total=su.plan["steps"], eta_s=0, message=f"test accuracy {rep['accuracy']:.4f}")
    return result
