"""Classifier training: a plain function from a config to a run folder.

    run_dir/config.json      ClassifierConfig (+ the caller's train_set_info and a summary of the training set)
    run_dir/status.json      state, epoch/step, ETA
    run_dir/metrics.jsonl    one row per epoch (loss, lr, images/s, test accuracy, macro-F1)
    run_dir/checkpoints/latest   weights + optimizer/scheduler state, written atomically
    run_dir/results.json     final test metrics (core.metrics.classification), written last

The whole training set lives on the device as uint8 and is augmented there per batch
(core.augment). Recipe: SGD with Nesterov momentum and weight decay, linear warm-up
then cosine decay per step, optional label smoothing, soft-target cross-entropy,
per-image loss weights for synthetic images, bf16 autocast on CUDA only. The same
code runs single-process or under ``accelerate launch`` (each process takes its slice
of every batch; the main process writes files). The final model is the one reported:
no checkpoint is picked by test accuracy.

The loop takes a ready training set: filling minority classes (core.balance) is the
caller's job, which passes the result as ``train_set`` and says how it was made in
``train_set_info`` (recorded in config.json).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.atomic import atomic_write_json, read_json
from core.augment import BatchAugment, BatchMix, channel_stats
from core.callbacks import Callbacks
from core.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from core.data.imageset import REAL, ImageSet, LoadedDataset
from core.data.loading import DataConfig
from core.jobconfig import JobConfig
from core.errors import ConfigError, TrainingError
from core.metrics.classification import check_test_classes, classification_report
from core.nets.resnet import ARCHS, build_classifier
from core.train.losses import LOSSES, REDUCTION, ClassifierLoss
from core.runs import Run
from core.tracking import check_log_with

KIND = "classifier"
GLYPH_DATASETS = ("digits", "mnist")  # a mirrored digit is another glyph: no flips


@dataclass
class ClassifierConfig(JobConfig):
    TABLE = "classifier"  # its ranges: core.bounds.CONFIG_BOUNDS["classifier"]

    data: DataConfig = field(default_factory=DataConfig)
    arch: str = "small"  # small | resnet18 | resnet50
    cifar_stem: bool = True  # ResNet18/50: 3x3 stride-1 first conv, no max-pool (for small images)
    epochs: int = 30  # passes over the (rebalanced) training set (when steps is None)
    steps: int | None = None  # optimizer steps in all (None = epochs × steps per epoch); the LR schedule spans them
    batch_size: int = 128  # images per optimizer step, over all processes
    lr: float = 0.1  # peak learning rate after warm-up
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # L2 coefficient (SGD weight_decay)
    warmup_epochs: float = 1.0  # linear warm-up length, in epochs of this run's training set
    warmup_steps: int | None = None  # linear warm-up length in steps (overrides warmup_epochs; a study sets it so every method warms up alike)
    loss: str = "ce"  # ce | reweight (Cui et al. 2019) | logit-adjust (Menon et al. 2021); see core.train.losses
    cb_beta: float = 0.9999  # β of the class-balanced loss (effective number (1 − β^n)/(1 − β))
    la_tau: float = 1.0  # τ of the logit adjustment (τ = 1: balanced softmax)
    label_smoothing: float = 0.0  # ε of label smoothing (0 = off)
    synthetic_weight: float = 1.0  # loss weight of images whose provenance is not "real"
    augment_pad: int | None = None  # random-crop padding in pixels (None = image_size // 8)
    augment_flip: bool | None = None  # horizontal flips (None = on, except digits/mnist)
    train_mix: str = "none"  # training-time torchvision v2 mix: none | mixup | cutmix
    mix_alpha: float = 1.0  # Beta(α, α) of the training-time mix
    eval_every: int = 1  # epochs between in-training evaluations logged to metrics.jsonl (0 = none)
    eval_subsample: int = 1000  # in-training evaluations use this fixed subsample of the test set; the full test set is evaluated once, at the end
    checkpoint_every: int = 1  # epochs between checkpoints
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 otherwise) | fp32 | bf16
    seed: int = 0  # weights init, batch order, augmentation
    device: str | None = None  # cpu | cuda | None (CUDA when available)
    log_with: str | None = None  # tensorboard | mlflow: metrics rows also go there (core.tracking); None = off

    def validate(self) -> None:
        check_log_with(self.log_with)
        if self.arch not in ARCHS:
            raise ConfigError(f"Unknown classifier '{self.arch}'.", f"Choose one of: {', '.join(ARCHS)}.")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1.", f"Set {name} to a positive integer.")
        if self.steps is not None and int(self.steps) < 1:
            raise ConfigError(f"steps={self.steps} must be at least 1.", "Set steps to a positive integer, or leave it empty to train for `epochs`.")
        if self.loss not in LOSSES:
            raise ConfigError(f"Unknown loss '{self.loss}'.", f"Choose one of: {', '.join(LOSSES)}.")
        if not 0.0 <= self.cb_beta < 1.0:
            raise ConfigError(f"cb_beta={self.cb_beta} must be in [0, 1).", "Use 0.9999 (Cui et al. 2019).")
        if not math.isfinite(self.la_tau) or self.la_tau < 0:
            raise ConfigError(f"la_tau={self.la_tau} must be >= 0.", "Use 1.0 (Menon et al. 2021).")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"Learning rate {self.lr} must be positive.", "Use e.g. 0.1 for SGD.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing={self.label_smoothing} must be in [0, 1).", "Use 0 (off) or e.g. 0.1.")
        if self.synthetic_weight < 0:
            raise ConfigError(f"synthetic_weight={self.synthetic_weight} must be >= 0.", "Use 1.0 to weigh synthetic images like real ones.")
        if self.train_mix not in ("none", "mixup", "cutmix"):
            raise ConfigError(f"Unknown training-time mix '{self.train_mix}'.", "Use 'none', 'mixup' or 'cutmix'.")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"Unknown precision '{self.precision}'.", "Use auto, fp32 or bf16.")


# --------------------------------------------------------------------------- helpers
def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine to 0:
    lr(t) = peak·(t+1)/W for t < W;  lr(t) = peak·½(1 + cos(π·(t−W)/(T−W))) otherwise."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def weighted_soft_ce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Soft-target cross-entropy, weighted per image:
    ℓ_i = −Σ_c ỹ_ic · log softmax(z_i)_c with ỹ = (1−ε)·y + ε/C (PyTorch's label smoothing);
    loss = Σ_i w_i·ℓ_i / Σ_i w_i (core.train.losses' "ce")."""
    return ClassifierLoss("ce", [], label_smoothing=label_smoothing)(logits, targets, weights)


def _accelerator(cfg: ClassifierConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    if cfg.device and cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"Device '{cfg.device}' was requested but no CUDA GPU is visible.", "Use --device cpu, or run on a GPU machine.")
    if cuda and cfg.device and ":" in cfg.device:
        torch.cuda.set_device(torch.device(cfg.device))
    mp = "bf16" if cuda and cfg.precision in ("auto", "bf16") else "no"  # bf16 autocast on CUDA only
    try:
        return Accelerator(cpu=not cuda, mixed_precision=mp)
    except ValueError:
        # AcceleratorState is a process-wide singleton; a single-process caller (job manager,
        # tests) that switches device or precision between jobs must reset it first.
        if AcceleratorState._shared_state and AcceleratorState().num_processes > 1:
            raise
        AcceleratorState._reset_state(True)
        return Accelerator(cpu=not cuda, mixed_precision=mp)


def schedule(cfg: ClassifierConfig, n: int) -> dict:
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

    from core.atomic import atomic_write

    tensors = {"logits": logits.float().contiguous(), "labels": labels.long().contiguous()}
    atomic_write(run_dir / name, lambda tmp: save_file(tensors, tmp))


def _same_config(saved: dict, cfg: ClassifierConfig, info: dict) -> bool:
    cur = {**cfg.to_dict(), **info}
    return all(saved.get(k) == v for k, v in cur.items() if k not in ("device", "log_with"))


# ---------------------------------------------------------------------------- train
def train_classifier(cfg: ClassifierConfig, run_dir: str | Path, callbacks: Callbacks | None = None, resume: bool = False,
                     train_set: ImageSet | None = None, dataset: LoadedDataset | None = None,
                     train_set_info: dict | None = None, extra_results: dict | None = None, validation: ImageSet | None = None) -> dict:
    """Train on ``train_set`` (default: ``cfg.data``'s imbalanced split as is) and evaluate on
    the dataset's balanced test split. Returns the final test metrics.

    ``train_set_info`` says how the caller made ``train_set`` (e.g. core.balance.train_set_info:
    ``balance_method``, ``balance_params``, ``balance_target``); it is written into config.json
    and results.json, and a resume must pass the same. Default with no ``train_set``:
    ``balance_method = "none"``.
    ``dataset`` may pass the already loaded balanced dataset to skip reloading it.
    ``extra_results`` adds the caller's keys to results.json (e.g. a study's budget curve),
    written in the same atomic write as the metrics.
    ``validation`` (a study's validation split, core.data.loading): the in-training evaluations
    read it instead of the test subsample, and the final model's figures on it go to
    results["validation"] ({accuracy, minority_f1, n}) and its logits to validation_logits.safetensors.
    Raises TrainingError on a non-finite loss (the last checkpoint stays intact).
    If ``callbacks.should_stop()`` turns true, saves nothing partial and returns
    ``{"cancelled": True, ...}``; resume continues from the last epoch checkpoint.
    """
    from core.data.loading import load_dataset
    from core.data.profiles import apply_profile, most_reduced_classes, target_counts

    cb = callbacks or Callbacks()
    cfg.validate()
    if train_set_info is None:
        train_set_info = {"balance_method": "none", "balance_params": {}, "balance_target": None} if train_set is None else {}
    clash = sorted(set(train_set_info) & (set(cfg.to_dict()) | {"kind", "created", "train_set"}))
    if clash:
        raise ConfigError(f"train_set_info repeats config key(s) {', '.join(clash)}.", "Describe the training set with other keys (e.g. balance_method).")
    run_dir = Path(run_dir)
    acc = _accelerator(cfg)
    main = acc.is_main_process
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
    acc.wait_for_everyone()

    # -- data on the device -------------------------------------------------------
    device = acc.device
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

    # -- model, optimizer ---------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.arch, train_set.num_classes, train_set.channels, cfg.cifar_stem)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    n, world = len(train_set), acc.num_processes
    bs, steps_per_epoch, total, warmup = (plan[k] for k in ("batch_size", "steps_per_epoch", "steps", "warmup_steps"))
    n_epochs = math.ceil(total / steps_per_epoch)  # the last one may be partial
    eval_set = validation if validation is not None else ds.test  # a study decides on validation, never on test images
    eval_idx = eval_subsample(len(eval_set), cfg.eval_subsample)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, warmup, cfg.lr) / cfg.lr)
    start_epoch, step = 0, 0
    ckpt = checkpoint_path(run.checkpoints) if resume else None
    if ckpt is not None:
        w, state, _ = load_checkpoint(ckpt)
        model.load_state_dict(w)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
    model, opt = acc.prepare(model, opt)  # the scheduler is stepped by hand, once per optimizer step
    core_model = acc.unwrap_model(model)

    if main:
        run.set_status("running", epoch=start_epoch, epochs=n_epochs, step=step, total=total, message="training")
    t_start, steps_this_session, last_loss = time.time(), 0, float("nan")
    model.train()
    for epoch in range(start_epoch, n_epochs):
        # One generator per epoch, seeded by (seed, epoch): a resumed run replays the same batches.
        g = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout / v2 mix draws
        perm = torch.randperm(n, device=device, generator=g)
        loss_sum, seen, t_epoch = torch.zeros((), device=device), 0, time.time()
        steps_now = min(steps_per_epoch, total - epoch * steps_per_epoch)
        for s in range(steps_now):
            if cb.stop_requested():
                if main:
                    run.set_status("cancelled", message=f"stopped in epoch {epoch + 1}; resume continues after the last saved epoch")
                return {"cancelled": True, "epoch": epoch, "run_dir": str(run_dir)}
            idx = perm[s * bs : (s + 1) * bs][acc.process_index :: world]
            x = aug(images[idx], generator=g)
            y = targets[idx]
            if mix is not None:
                x, y = mix(x, y)
            with acc.autocast():
                logits = model(x)
            loss = loss_fn(logits, y, weights[idx])
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            opt.step()
            sched.step()
            step += 1
            steps_this_session += 1
            loss_sum += loss.detach()
            seen += len(idx) * world
            if s % 25 == 0 or s == steps_now - 1:
                if not torch.isfinite(loss_sum):
                    if main:
                        run.set_status("failed", error="non-finite loss", message=f"loss became {float(loss.detach())} at step {step}")
                    raise TrainingError(
                        f"The classifier's loss became non-finite ({float(loss.detach())}) at epoch {epoch + 1}, step {step}.",
                        f"Lower the learning rate (now {cfg.lr}) or the batch size; resume starts from the last good checkpoint.",
                    )
                if main:
                    el = time.time() - t_start
                    eta = el / steps_this_session * (total - step)
                    cb.progress(step, total, f"epoch {epoch + 1}/{n_epochs}, loss {float(loss.detach()):.3f}, ETA {eta:.0f} s")
        dt = time.time() - t_epoch
        last_loss = float(loss_sum) / max(steps_now, 1)
        row = {"epoch": epoch + 1, "step": step, "loss": last_loss, "lr": opt.param_groups[0]["lr"], "images_per_s": seen / max(dt, 1e-9)}
        last = epoch + 1 == n_epochs
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0) and not last:
            # a fixed subsample of the test set while training; the full test set once, at the end
            pred = predict(core_model, eval_set.images[eval_idx], aug, device)
            rep = classification_report(eval_set.labels[eval_idx], pred, ds.test.num_classes, minority)
            split = "validation" if validation is not None else "test"
            row.update({f"{split}_accuracy": rep["accuracy"], f"{split}_macro_f1": rep["macro_f1"], f"{split}_images": len(eval_idx)})
        if main:
            run.log_metrics(row)
            cb.metrics(row)
            if last or (cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0):
                state = {"epoch": epoch + 1, "step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
                save_checkpoint(run.checkpoints, "latest", core_model.state_dict(), state, config)
            el = time.time() - t_start
            run.set_status("running", epoch=epoch + 1, step=step, total=total, eta_s=el / max(steps_this_session, 1) * (total - step),
                           message=f"epoch {epoch + 1}/{n_epochs}, loss {last_loss:.3f}")
        acc.wait_for_everyone()

    # -- final evaluation ---------------------------------------------------------
    logits = predict_logits(core_model, ds.test.images, aug, device)
    rep = classification_report(ds.test.labels, logits.argmax(-1), ds.test.num_classes, minority, ds.test.classes)
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
        "imbalanced_counts": imb_counts,
        "train_set_info": train_set_info,
        "images_per_s": float(np.median(ips)) if ips else None,
        "device": str(device),
        "precision": acc.mixed_precision,
        "run_dir": str(run_dir),
    }
    if validation is not None:
        val_logits = predict_logits(core_model, validation.images, aug, device)
        vrep = classification_report(validation.labels, val_logits.argmax(-1), ds.test.num_classes, minority)
        result["validation"] = {"accuracy": vrep["accuracy"], "minority_f1": vrep["minority_f1"], "n": len(validation)}
    clash = sorted(set(extra_results or {}) & set(result))
    if clash:
        raise ConfigError(f"extra_results repeats result key(s) {', '.join(clash)}.", "Name the caller's keys differently.")
    result.update(extra_results or {})
    if main:
        save_test_logits(run_dir, logits, ds.test.labels)
        if validation is not None:
            save_test_logits(run_dir, val_logits, validation.labels, name="validation_logits.safetensors")
        atomic_write_json(run_dir / "results.json", result)
        run.log_metrics({"epoch": n_epochs, "step": step, "final": True, "test_accuracy": rep["accuracy"], "test_macro_f1": rep["macro_f1"]})
        run.set_status("done", epoch=n_epochs, step=step, total=total, eta_s=0, message=f"test accuracy {rep['accuracy']:.4f}")
    return result

