"""Classifier training: a plain function from a config to a run folder.

    run_dir/config.json      ClassifierConfig (+ the caller's train_set_info and a summary of the training set)
    run_dir/status.json      state, epoch/step, ETA
    run_dir/metrics.jsonl    one row per epoch (loss, lr, images/s, test accuracy, macro-F1)
    run_dir/checkpoints/latest   weights + optimizer/scheduler state, written atomically
    run_dir/results.json     final test metrics (core.metrics.classification), written last

The whole training set lives on the device as uint8 and is augmented there per batch
(core.train.augment). Recipe: SGD with Nesterov momentum and weight decay, linear warm-up
then cosine decay per step, optional label smoothing, soft-target cross-entropy,
per-image loss weights for synthetic images, bf16 autocast on CUDA only. The same
code runs single-process or under ``accelerate launch`` (each process takes its slice
of every batch; the main process writes files). The final model is the one reported:
no checkpoint is picked by test accuracy.

The loop takes a ready training set: filling minority classes (core.generators.balance) is the
caller's job, which passes the result as ``train_set`` and says how it was made in
``train_set_info`` (recorded in config.json).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.callbacks import Callbacks
from core.data.imageset import ImageSet, LoadedDataset
from core.data.loading import DataConfig
from core.settings.jobconfig import JobConfig
from core.errors import ConfigError
from core.nets.resnet import ARCHS
from core.train.classifier_steps import (  # noqa: F401  (re-exported: callers import them from here)
    GLYPH_DATASETS, KIND, RunSetup, end_epoch, eval_subsample, finish_run, lr_at, new_model, non_finite, predict, predict_logits,
    prepare_run, save_test_logits, schedule,
)
from core.train.losses import LOSSES, ClassifierLoss
from core.store.tracking import check_log_with


@dataclass
class ClassifierConfig(JobConfig):
    TABLE = "classifier"  # its ranges: core.settings.bounds.CONFIG_BOUNDS["classifier"]

    data: DataConfig = field(default_factory=DataConfig)
    arch: str = "small"  # tiny | small | resnet18 | resnet50
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
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 otherwise) | fp32 | bf16 | fp64 (float64 weights and inputs: equivalence tests)
    seed: int = 0  # weights init, batch order, augmentation
    device: str | None = None  # cpu | cuda | None (CUDA when available)
    log_with: str | None = None  # tensorboard | mlflow: metrics rows also go there (core.store.tracking); None = off

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
        if self.precision not in ("auto", "fp32", "bf16", "fp64"):
            raise ConfigError(f"Unknown precision '{self.precision}'.", "Use auto, fp32, bf16 or fp64.")


# --------------------------------------------------------------------------- helpers
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


# ---------------------------------------------------------------------------- train
def train_classifier(cfg: ClassifierConfig, run_dir: str | Path, callbacks: Callbacks | None = None, resume: bool = False,
                     train_set: ImageSet | None = None, dataset: LoadedDataset | None = None,
                     train_set_info: dict | None = None, extra_results: dict | None = None, validation: ImageSet | None = None) -> dict:
    """Train on ``train_set`` (default: ``cfg.data``'s imbalanced split as is) and evaluate on
    the dataset's balanced test split. Returns the final test metrics.

    ``train_set_info`` says how the caller made ``train_set`` (e.g. core.generators.balance.train_set_info:
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
    (``core.train.batched`` trains several runs of one architecture as one computation, writing the same files.)
    """
    cb = callbacks or Callbacks()
    cfg.validate()
    acc = _accelerator(cfg)
    main = acc.is_main_process
    device = acc.device
    su = prepare_run(cfg, run_dir, resume, train_set, dataset, train_set_info, device, main, acc.wait_for_everyone, validation)
    if not isinstance(su, RunSetup):
        return su
    run, images, targets, weights, aug, mix, loss_fn = su.run, su.images, su.targets, su.weights, su.aug, su.mix, su.loss_fn
    model, opt, sched, start_epoch, step = new_model(su, resume)
    n, world = len(su.train_set), acc.num_processes
    bs, steps_per_epoch, total = (su.plan[k] for k in ("batch_size", "steps_per_epoch", "steps"))
    n_epochs = su.n_epochs
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
                return {"cancelled": True, "epoch": epoch, "run_dir": str(su.run_dir)}
            idx = perm[s * bs : (s + 1) * bs][acc.process_index :: world]
            x = aug(images[idx], generator=g).to(su.dtype)
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
                    raise non_finite(su, float(loss.detach()), epoch, step, main)
                if main:
                    el = time.time() - t_start
                    eta = el / steps_this_session * (total - step)
                    cb.progress(step, total, f"epoch {epoch + 1}/{n_epochs}, loss {float(loss.detach()):.3f}, ETA {eta:.0f} s")
        dt = time.time() - t_epoch
        last_loss = float(loss_sum) / max(steps_now, 1)
        row = {"epoch": epoch + 1, "step": step, "loss": last_loss, "lr": opt.param_groups[0]["lr"], "images_per_s": seen / max(dt, 1e-9)}
        end_epoch(su, epoch, step, row, core_model, opt, sched, cb, device, time.time() - t_start, steps_this_session, main)
        acc.wait_for_everyone()

    # -- final evaluation ---------------------------------------------------------
    return finish_run(su, core_model, step, last_loss, device, "fp64" if cfg.precision == "fp64" else acc.mixed_precision, extra_results, main)
