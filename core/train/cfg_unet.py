"""Train the class-conditional CFG diffusion model on the imbalanced train split.

A plain function: :class:`CFGTrainConfig` + :class:`~core.callbacks.Callbacks` in, a run
folder out (``config.json``, ``status.json``, ``metrics.jsonl``, ``checkpoints/latest|best``,
``images/preview_<step>.png``). No threads, no Streamlit.

Objective: the DDPM simple loss with ε-prediction (the paper's Eq. 7)

    L = E_{x0, c, t, ε} ‖ε − ε_θ(√ᾱ_t·x0 + √(1−ᾱ_t)·ε, t, c̃)‖²,   t ~ U{0..T−1}, T = 1000

where c̃ is the class c, replaced by the null label C with probability p_uncond
(label dropout), so one network learns ε(x, c) and ε(x) for guidance (Eq. 8).

Runs unchanged under ``torchrun`` / ``accelerate launch``: with WORLD_SIZE > 1 an
``accelerate.Accelerator`` wraps the model in DDP (gloo on CPU, NCCL on GPUs); each
process draws its own batches and only the main process writes files.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from core.store.atomic import atomic_write_json
from core.callbacks import Callbacks
from core.store.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from core.data.loading import DataConfig, prepare
from core.settings.device import resolve_device
from core.diffusion.cbdm import CBDM_TARGETS, check_cbdm, cbdm_regulariser, draw_targets
from core.diffusion.guidance import check_w
from core.diffusion.samplers import T_TRAIN, check_beta_schedule, check_sampler, model_eps_fn, sample, to_uint8, training_scheduler
from core.settings.jobconfig import JobConfig
from core.errors import ConfigError, LabError, TrainingError
from core.store.imageio import save_png
from core.nets.unet import PRESETS, build_unet
from core.store.runs import Run
from core.store.tracking import check_log_with

KIND = "cfg"
PRESET_LR = {"tiny": 1e-3, "small": 2e-4, "ddpm": 2e-4}  # AdamW peak learning rate per preset


@dataclass
class CFGTrainConfig(JobConfig):
    TABLE = "cfg_train"  # its ranges: core.settings.bounds.CONFIG_BOUNDS["cfg_train"]

    data: DataConfig = field(default_factory=DataConfig)
    preset: str = "tiny"  # tiny | small | ddpm (core.nets.unet.PRESETS)
    steps: int = 3000  # optimizer steps in total (a resumed run counts the steps already done)
    batch_size: int = 64  # images per step, per process
    lr: float | None = None  # AdamW peak learning rate; None = the preset's (tiny 1e-3, small/ddpm 2e-4)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    p_uncond: float = 0.1  # probability that a label is replaced by the null label (label dropout)
    beta_schedule: str = "linear"  # linear (DDPM, β 1e-4..0.02) | cosine (Nichol & Dhariwal); T = 1000
    ema_decay: float = 0.9995  # largest EMA decay; warm-up decay 1 − (1 + step)^(−3/4) below it
    warmup_steps: int = 200  # linear learning-rate warm-up, steps
    grad_clip: float = 1.0  # max global gradient L2 norm; 0 = no clipping
    uniform_classes: bool = False  # draw a class uniformly, then an image of it (minorities seen as often as majorities)
    cbdm_tau: float = 0.0  # CBDM regulariser strength τ (Qin et al. 2023; core.diffusion.cbdm); 0 = off. Costs one more forward pass
    cbdm_target: str = "train"  # CBDM's y' distribution: train (class frequencies, the reference code) | uniform (its fine-tuning mode)
    hflip: bool | None = None  # random horizontal flips; None = on for RGB data, off for grayscale (digits)
    preview_every: int = 500  # steps between preview grids; 0 = only at the end
    preview_per_class: int = 8  # columns of the preview grid (fixed seeds 0..n-1), one row per class
    preview_sampler: str = "dpm"  # ddpm | ddim | dpm
    preview_steps: int = 25  # sampler steps for previews
    preview_w: float = 1.0  # the paper's w for previews (diffusers guidance_scale = 1 + w)
    checkpoint_every: int = 500  # steps between checkpoints (latest, and best if the loss improved); 0 = end only
    log_every: int = 25  # steps per metrics.jsonl row (loss is the mean over those steps)
    max_seconds: float | None = None  # wall-clock budget of this call, s; reaching it ends the run as done
    seed: int = 0  # training randomness: init, batches, noise, timesteps, label dropout
    device: str | None = None  # cpu | cuda | cuda:N; None = CUDA if available. Under torchrun each process picks its own
    log_with: str | None = None  # tensorboard | mlflow: metrics rows also go there (core.store.tracking); None = off

    @property
    def peak_lr(self) -> float:
        return float(self.lr if self.lr is not None else PRESET_LR.get(self.preset, 2e-4))

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"Unknown model preset '{self.preset}'.", f"Choose one of: {', '.join(PRESETS)}.")
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name}={v!r} must be a positive integer.", f"Pass --{name.replace('_', '-')} 1 or more.")
        for name in ("warmup_steps", "preview_every", "checkpoint_every", "preview_per_class"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0.", "Use 0 or a positive number.")
        if self.log_every < 1:
            raise ConfigError(f"log_every={self.log_every} must be >= 1.", "Use e.g. 25.")
        if not (self.peak_lr > 0 and math.isfinite(self.peak_lr)):
            raise ConfigError(f"Learning rate {self.lr} must be a positive number.", "Use e.g. 2e-4 (small/ddpm) or 1e-3 (tiny).")
        if not 0.0 <= self.p_uncond < 1.0:
            raise ConfigError(f"p_uncond={self.p_uncond} must be in [0, 1).", "Use the paper's 0.1 (0.1-0.2 are common).")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in [0, 1).", "Use e.g. 0.9995.")
        if self.grad_clip < 0:
            raise ConfigError(f"grad_clip={self.grad_clip} must be >= 0.", "Use 1.0, or 0 to turn clipping off.")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"max_seconds={self.max_seconds} must be positive.", "Leave it empty for no time budget.")
        check_beta_schedule(self.beta_schedule)
        check_cbdm(self.cbdm_tau, self.cbdm_target)
        check_sampler(self.preview_sampler, int(self.preview_steps))
        check_w(self.preview_w)
        check_log_with(self.log_with)


# ----------------------------------------------------------------------------- devices
class _SingleProcess:
    """The part of ``accelerate.Accelerator``'s API the loop uses, for one process.

    Written out because Accelerator's state is a process-wide singleton fixed by its first
    use (device, cpu flag, mixed precision): the app's job manager, which runs jobs on
    different devices in one process, could not start a CPU job after a GPU one. When the
    script is launched with several processes (WORLD_SIZE > 1) the real Accelerator is used.
    """

    num_processes = 1
    process_index = 0
    is_main_process = True

    def __init__(self, device: torch.device):
        self.device = device

    def prepare(self, *objs):
        return objs

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, params, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def unwrap_model(self, model):
        return model

    def wait_for_everyone(self) -> None:
        pass

    def reduce(self, tensor: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return tensor


def _accelerator(device: str | None):
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import Accelerator

        # Mixed precision is applied by our own bf16 autocast (CUDA only), identical in both modes.
        return Accelerator(cpu=(device == "cpu" or not torch.cuda.is_available()), mixed_precision="no")
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)
    return _SingleProcess(dev)


# ------------------------------------------------------------------------------- data
class _Batches:
    """Random batches from the train split held on the device as uint8; one seed per step and process."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int, uniform_classes: bool, hflip: bool, device):
        order = torch.argsort(labels, stable=True)
        self.images = images[order].to(device)
        self.labels = labels[order].to(device)
        counts = torch.bincount(labels, minlength=num_classes)
        self.counts = counts
        self.starts = torch.cumsum(counts, 0) - counts
        self.present = torch.nonzero(counts > 0).flatten()
        self.uniform_classes = uniform_classes
        self.hflip = hflip

    def draw(self, batch_size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.uniform_classes:
            cls = self.present[torch.randint(len(self.present), (batch_size,), generator=g)]
            idx = self.starts[cls] + (torch.rand(batch_size, generator=g) * self.counts[cls]).long()
        else:
            idx = torch.randint(len(self.labels), (batch_size,), generator=g)
        flip = torch.rand(batch_size, generator=g) < 0.5
        idx = idx.to(self.images.device)
        x = self.images[idx].float() / 127.5 - 1.0  # uint8 -> [-1, 1]
        if self.hflip:
            flip = flip.to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x, self.labels[idx]


def _step_seed(seed: int, step: int, rank: int) -> int:
    # Every step's randomness is a function of (seed, step, rank): a resumed run draws
    # exactly the batches, noise and timesteps the uninterrupted run would have drawn.
    return (seed * 1_000_003 + step * 8_191 + rank * 131) % (2**63 - 1)


# ------------------------------------------------------------------------ checkpoints
def _ckpt_weights(model: UNet2DModel, ema: EMAModel) -> dict[str, torch.Tensor]:
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_parameters()]
    weights.update({f"ema.{n}": p for n, p in zip(names, ema.shadow_params)})
    return weights


def _ckpt_config(cfg: CFGTrainConfig, model: UNet2DModel, classes: list[str], channels: int, image_size: int, counts: list[int]) -> dict:
    return {
        "kind": KIND,
        "train": cfg.to_dict(),
        "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items() if not k.startswith("_")},
        "classes": list(classes),
        "channels": int(channels),
        "image_size": int(image_size),
        "null_label": len(classes),
        "train_counts": counts,
        "beta_schedule": cfg.beta_schedule,
    }


def _save(run: Run, name: str, model, ema, opt, lr_sched, step: int, best_loss: float, ckpt_cfg: dict) -> Path:
    state = {
        "step": step,
        "optimizer": opt.state_dict(),
        "lr_scheduler": lr_sched.state_dict(),
        "ema": {k: v for k, v in ema.state_dict().items() if k != "shadow_params"},
        "best_loss": float(best_loss),
        "rng": {"torch": torch.get_rng_state(), **({"cuda": torch.cuda.get_rng_state()} if torch.cuda.is_available() else {})},
    }
    return save_checkpoint(run.checkpoints, name, _ckpt_weights(model, ema), state, ckpt_cfg)


def _restore(path: Path, model, ema, opt, lr_sched, cfg: CFGTrainConfig, device) -> tuple[int, float]:
    weights, state, _ = load_checkpoint(path, map_location="cpu")
    try:
        model.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("model.")})
        names = [n for n, _ in model.named_parameters()]
        ema.load_state_dict({**state["ema"], "shadow_params": [weights[f"ema.{n}"].to(device) for n in names]})
        opt.load_state_dict(state["optimizer"])
        lr_sched.load_state_dict(state["lr_scheduler"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"Checkpoint {path} does not fit this model ({str(exc)[:200]}).", "Resume with the run's own settings, or start a new --out folder.") from exc
    # A changed --lr on resume takes effect (the optimizer state would otherwise restore the old one).
    for group in opt.param_groups:
        group["initial_lr"] = cfg.peak_lr
    lr_sched.base_lrs = [cfg.peak_lr for _ in opt.param_groups]
    rng = state.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return int(state["step"]), float(state.get("best_loss", float("inf")))


# ----------------------------------------------------------------------------- preview
@torch.no_grad()
def _preview(run: Run, model: UNet2DModel, ema: EMAModel, cfg: CFGTrainConfig, step: int, shape, num_classes: int, device) -> Path:
    from torchvision.utils import make_grid

    k = max(1, cfg.preview_per_class)
    labels = torch.arange(num_classes).repeat_interleave(k)
    seeds = list(range(k)) * num_classes  # the same seeds every time: previews are comparable across steps
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    was_training = model.training
    model.eval()
    try:
        x = sample(model_eps_fn(model, device), labels, seeds, shape, num_classes, w=cfg.preview_w,
                   sampler=cfg.preview_sampler, steps=cfg.preview_steps, beta_schedule=cfg.beta_schedule, device=device)
    finally:
        ema.restore(model.parameters())
        model.train(was_training)
    grid = make_grid(to_uint8(x), nrow=k, padding=1, pad_value=255)
    return save_png(grid, run.images / f"preview_{step:07d}.png")


# ------------------------------------------------------------------------------- train
def train_cfg(cfg: CFGTrainConfig, run_dir: str | os.PathLike, callbacks: Callbacks | None = None, resume: bool = False) -> Path:
    """Train (or resume) a CFG diffusion model; returns the run folder."""
    return fit(cfg, run_dir, callbacks, resume)[0]


def _check_resume(stored: dict, cfg: CFGTrainConfig) -> None:
    old = CFGTrainConfig.from_dict(stored)
    for name in ("preset", "beta_schedule"):
        if getattr(old, name) != getattr(cfg, name):
            raise ConfigError(f"The run was trained with {name}={getattr(old, name)!r}, not {getattr(cfg, name)!r}.", "Resume with the run's own settings, or choose a new --out folder.")
    if old.data.to_dict() != cfg.data.to_dict():
        raise ConfigError("The run was trained on other data settings (dataset/profile) than the ones given.", "Resume with the run's own data settings, or choose a new --out folder.")


def fit(cfg: CFGTrainConfig, run_dir: str | os.PathLike, callbacks: Callbacks | None = None, resume: bool = False) -> tuple[Path, UNet2DModel]:
    """:func:`train_cfg` that also returns the trained (non-EMA) network of this process."""
    cb = callbacks or Callbacks()
    cfg.validate()
    acc = _accelerator(cfg.device)
    device, rank, world = acc.device, acc.process_index, acc.num_processes

    _, train = prepare(cfg.data)  # the imbalanced train split only
    C, ch, size = train.num_classes, train.channels, train.image_size
    torch.manual_seed(cfg.seed)  # same initial weights on every process
    model = build_unet(cfg.preset, C, ch, size).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.peak_lr, weight_decay=cfg.weight_decay)
    lr_sched = get_scheduler("constant_with_warmup", opt, num_warmup_steps=cfg.warmup_steps)

    run_dir = Path(run_dir)
    run = _open_run(cfg, run_dir, resume, acc)
    start, best_loss = 0, float("inf")
    ckpt = checkpoint_path(run.checkpoints, "latest") if resume else None
    if ckpt is not None:
        start, best_loss = _restore(ckpt, model, ema, opt, lr_sched, cfg, device)

    hflip = cfg.hflip if cfg.hflip is not None else ch == 3
    data = _Batches(train.images, train.labels, C, cfg.uniform_classes, hflip, device)
    noise_sched = training_scheduler(cfg.beta_schedule)
    noise_sched.alphas_cumprod = noise_sched.alphas_cumprod.to(device)
    unwrapped = model
    model, opt = acc.prepare(model, opt)
    model.train()
    cuda = device.type == "cuda"
    book = _Bookkeeping(cfg, run, cb, acc, unwrapped, ema, opt, lr_sched, best_loss,
                        _ckpt_config(cfg, unwrapped, train.classes, ch, size, train.counts()), (ch, size, size), C)

    step = start
    book.status("running", step=step, message=f"{'resuming at' if start else 'starting'} step {start}", error=None)
    try:
        if step >= cfg.steps:
            book.status("done", step=step, message=f"already trained for {step} steps")
            return run_dir, unwrapped
        while step < cfg.steps:
            if book.ends_early(step):  # a stop request or the time budget, agreed on by every process
                return run_dir, unwrapped

            # -- one optimisation step of Eq. 7 ---------------------------------------------
            g = torch.Generator().manual_seed(_step_seed(cfg.seed, step, rank))
            x0, y = data.draw(cfg.batch_size, g)
            noise = torch.randn(x0.shape, generator=g).to(device)
            t = torch.randint(0, T_TRAIN, (cfg.batch_size,), generator=g).to(device)
            drop = (torch.rand(cfg.batch_size, generator=g) < cfg.p_uncond).to(device)
            y = torch.where(drop, torch.full_like(y, C), y)  # label dropout -> null label C
            xt = noise_sched.add_noise(x0, noise, t)  # √ᾱ_t·x0 + √(1−ᾱ_t)·ε
            if cuda:
                xt = xt.contiguous(memory_format=torch.channels_last)
            y_bal = draw_targets(data.counts, cfg.batch_size, cfg.cbdm_target, g).to(device) if cfg.cbdm_tau > 0 else None
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                if y_bal is None:
                    pred = model(xt, t, class_labels=y).sample
                else:  # CBDM: ε(x_t, y) and ε(x_t, y') in one batched pass
                    pred, pred_bal = model(torch.cat([xt, xt]), torch.cat([t, t]), class_labels=torch.cat([y, y_bal])).sample.chunk(2)
            loss = F.mse_loss(pred.float(), noise)  # Eq. 7, the simple loss
            if y_bal is not None:  # + (t/T)·τ·(‖ε(y) − sg ε(y')‖² + ¼‖sg ε(y) − ε(y')‖²), none for dropped labels
                loss = loss + cbdm_regulariser(pred.float(), pred_bal.float(), t, T_TRAIN, cfg.cbdm_tau, keep=~drop)
            loss_all = acc.reduce(loss.detach(), reduction="mean") if world > 1 else loss.detach()
            loss_value = float(loss_all)
            if not math.isfinite(loss_value):
                _nonfinite(run, step, loss_value, cfg, book.status)
            acc.backward(loss)
            if cfg.grad_clip > 0:
                norm = acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if not math.isfinite(float(norm)):
                    _nonfinite(run, step, float(norm), cfg, book.status, what="gradient norm")
            opt.step()
            lr_sched.step()
            opt.zero_grad(set_to_none=True)
            ema.step(unwrapped.parameters())
            step += 1

            book.after_step(step, loss_value)  # metrics row, progress, checkpoint and preview cadence
        book.finish(step)
        return run_dir, unwrapped
    except torch.OutOfMemoryError as exc:
        err = TrainingError(
            f"The GPU ran out of memory at batch size {cfg.batch_size} (preset '{cfg.preset}'); the last checkpoint is kept.",
            f"Lower --batch-size (e.g. {max(1, cfg.batch_size // 2)}) or use a smaller --preset, then --resume.",
        )
        book.status("failed", step=step, error=str(err), message="out of memory")
        raise err from exc
    except TrainingError:
        raise
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            book.status("failed", step=step, error=f"{type(exc).__name__}: {exc}", message="failed")
        else:
            book.status("interrupted", step=step, message="interrupted; resume to continue")
        raise


# ------------------------------------------------------------------------ bookkeeping
def _open_run(cfg: CFGTrainConfig, run_dir: Path, resume: bool, acc) -> Run:
    """Create or reopen the run folder (main process); every process gets the same refusal."""
    run = Run(run_dir)
    refused: LabError | None = None
    if acc.is_main_process:
        try:
            if resume and (run_dir / "config.json").exists():
                Run.open_or_create(run_dir, KIND, cfg.to_dict(), resume=True)  # refuses another kind's folder
                _check_resume(run.config, cfg)
                atomic_write_json(run_dir / "config.json", {**run.config, **cfg.to_dict()})
            else:
                run = Run.open_or_create(run_dir, KIND, cfg.to_dict(), resume=resume)
        except LabError as exc:
            refused = exc
    if acc.num_processes > 1:
        # Only the main process checks the run folder; tell the others, so that they stop
        # with the same message instead of waiting at the barrier forever.
        msg = [str(refused) if refused else None]
        torch.distributed.broadcast_object_list(msg, src=0)
        if msg[0] and refused is None:
            refused = ConfigError(f"The main process refused the run folder: {msg[0]}")
    if refused is not None:
        raise refused
    acc.wait_for_everyone()
    return run


class _Bookkeeping:
    """Everything around an optimisation step: status, metrics rows, checkpoints, previews, stops.

    Only the main process writes; every call that writes waits for the other processes.
    """

    def __init__(self, cfg: CFGTrainConfig, run: Run, cb: Callbacks, acc, model, ema, opt, lr_sched,
                 best_loss: float, ckpt_cfg: dict, shape: tuple, num_classes: int):
        self.cfg, self.run, self.cb, self.acc = cfg, run, cb, acc
        self.model, self.ema, self.opt, self.lr_sched = model, ema, opt, lr_sched
        self.best_loss, self.ckpt_cfg, self.shape, self.num_classes = best_loss, ckpt_cfg, shape, num_classes
        self.main, self.world, self.device = acc.is_main_process, acc.num_processes, acc.device
        self.t_call = self.t_row = time.time()
        self.row_losses: list[float] = []  # since the last metrics row
        self.ckpt_losses: list[float] = []  # since the last checkpoint ("best" compares their means)

    def status(self, state: str, **fields) -> None:
        if self.main:
            self.run.set_status(state, total=self.cfg.steps, world_size=self.world, device=str(self.device), **fields)

    def after_step(self, step: int, loss: float) -> None:
        cfg = self.cfg
        self.row_losses.append(loss)
        self.ckpt_losses.append(loss)
        if step % cfg.log_every == 0 or step == cfg.steps:
            self.log_row(step)
        if self.main:
            self.cb.progress(step, cfg.steps, f"step {step}/{cfg.steps}")
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            self.checkpoint(step)
        if cfg.preview_every and step % cfg.preview_every == 0 and step < cfg.steps:
            self.preview(step)

    def log_row(self, step: int) -> None:
        """One metrics.jsonl row: the mean loss and the images/s since the last row."""
        cfg, elapsed = self.cfg, time.time() - self.t_row
        row = {
            "step": step,
            "loss": _mean(self.row_losses),
            "lr": self.opt.param_groups[0]["lr"],
            "images_per_s": len(self.row_losses) * cfg.batch_size * self.world / max(elapsed, 1e-9),
        }
        eta = (cfg.steps - step) * elapsed / max(len(self.row_losses), 1)
        if self.main:
            self.run.log_metrics(row)
            self.cb.metrics(row)
            self.status("running", step=step, eta_s=round(eta, 1), loss=row["loss"], message=f"step {step}/{cfg.steps}, loss {row['loss']:.4f}")
        self.t_row, self.row_losses = time.time(), []

    def checkpoint(self, step: int) -> None:
        """Save "latest"; also "best" when the mean loss since the last checkpoint is the lowest yet."""
        window = _mean(self.ckpt_losses)
        if self.main:
            args = (self.model, self.ema, self.opt, self.lr_sched, step)
            _save(self.run, "latest", *args, min(self.best_loss, window or self.best_loss), self.ckpt_cfg)
            if window is not None and window < self.best_loss:
                self.best_loss = window
                _save(self.run, "best", *args, self.best_loss, self.ckpt_cfg)
        self.ckpt_losses = []
        self.acc.wait_for_everyone()

    def preview(self, step: int) -> None:
        if self.main:
            self.cb.preview(_preview(self.run, self.model, self.ema, self.cfg, step, self.shape, self.num_classes, self.device))
        self.acc.wait_for_everyone()

    def ends_early(self, step: int) -> bool:
        """Checkpoint and end the run on a stop request or at the time budget (every process agrees)."""
        cfg = self.cfg
        stop = 1.0 if (self.main and self.cb.stop_requested()) else 0.0
        over = 1.0 if (cfg.max_seconds is not None and time.time() - self.t_call >= cfg.max_seconds) else 0.0
        if self.world > 1:
            flags = self.acc.reduce(torch.tensor([stop, over], device=self.device), reduction="sum")
            stop, over = float(flags[0]), float(flags[1])
        if not (stop or over):
            return False
        self.checkpoint(step)
        if stop:
            self.status("cancelled", step=step, message=f"cancelled at step {step}; resume to continue")
        else:
            self.status("done", step=step, message=f"time budget of {cfg.max_seconds:g} s reached at step {step}")
        return True

    def finish(self, step: int) -> None:
        self.checkpoint(step)
        self.preview(step)
        self.status("done", step=step, eta_s=0, message=f"trained {step} steps")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _nonfinite(run: Run, step: int, value: float, cfg: CFGTrainConfig, set_status, what: str = "loss") -> None:
    ckpt = checkpoint_path(run.checkpoints, "latest")
    kept = f"the last good checkpoint ({ckpt}) is kept" if ckpt else "no checkpoint had been written yet"
    err = TrainingError(
        f"Training stopped at step {step + 1}: the {what} became {value} (not a finite number); {kept}.",
        f"Lower --lr (now {cfg.peak_lr:g}), keep --grad-clip > 0, then resume with --resume"
        + (" (it restarts from that checkpoint)." if ckpt else "."),
    )
    set_status("failed", step=step, error=str(err), message=f"{what} is {value}")
    raise err
