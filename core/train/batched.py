"""Several classifier runs of one architecture trained as one computation.

K runs that share an architecture, image shape, batch size and optimizer settings are stacked
(``torch.func.stack_module_state``-style: every parameter and buffer gets a leading model axis
of size K) and trained together: one ``torch.func.vmap`` over ``torch.func.functional_call``
runs the K forward passes as one (convolutions become one grouped convolution), one backward
gives every model its gradient (the summed loss separates: model k's parameters only see
loss k), and SGD is applied to the stacked tensors with each model's own learning rate.

Each model keeps what it has when trained apart (``core.train.classifier.train_classifier``):
* its initialisation (``torch.manual_seed(cfg.seed)`` before building it), its batch order and
  augmentation (its own generator per epoch, seeded by (seed, epoch)), its loss (class weights,
  logit offsets, soft labels, synthetic-image weights: its own ``ClassifierLoss``);
* its LR schedule (warm-up and cosine over its own steps) and length: a model leaves the batch
  after its last step (a budget curve's S/8, S/4, S/2 and S runs train together, the short ones
  leaving first), and the rest go on;
* its BatchNorm running statistics: they are buffers with the model axis, updated in place
  under ``vmap`` (``F.batch_norm`` writes each model's slice), so evaluation uses each model's own;
* its files: config.json, status.json, metrics.jsonl, checkpoints/latest and results.json,
  test_logits.safetensors, written by the same code (``core.train.classifier_steps``) from a
  plain per-model ``nn.Module``/SGD/LambdaLR mirror that the stacked state is copied into at
  each epoch end. So a checkpoint written here resumes under ``train_classifier`` and back.

Resume granularity: per run and epoch, as today. A finished run (results.json, state done) is
skipped; an unfinished one starts from its last epoch checkpoint; the others in its group start
where their own checkpoints are. A study folder written before batching resumes the same way.

Not batched (``compatible`` says why): training-time MixUp/CutMix (``train_mix``, which draws
from torch's global generator in an order tied to one model at a time), runs that differ in
architecture, batch size, image shape, momentum, Nesterov or weight decay, and multi-process
(``accelerate launch``) runs.

Equal to training apart up to floating-point rounding (a grouped convolution sums in another
order): tests/test_batched.py holds K batched runs to their separate twins.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from core.callbacks import Callbacks
from core.data.imageset import ImageSet, LoadedDataset
from core.errors import ConfigError
from core.nets.resnet import build_classifier
from core.train.classifier import ClassifierConfig, train_classifier
from core.train.classifier_steps import RunSetup, end_epoch, finish_run, lr_at, new_model, non_finite, prepare_run

ENV = "IMBALANCE_LAB_BATCHED"  # on | off | auto (default): whether study cells train their runs batched
# Above this many parameters a model is trained alone (auto): ResNet18 (11 M) and ResNet50 (24 M) keep one
# model per step, where one model already fills a GPU; the `small` ResNet (0.3 M) is batched on a GPU.
MAX_PARAMS = 2_000_000


@dataclass
class BatchJob:
    """One run of a batch: what ``train_classifier`` would be given."""

    cfg: ClassifierConfig
    run_dir: Path
    train_set: ImageSet | None = None
    train_set_info: dict | None = None
    # keys added to results.json; a callable gets the results of the batch so far (None = not finished)
    extra_results: dict | Callable[[list], dict] | None = None
    validation: ImageSet | None = None  # a study's validation split (train_classifier's ``validation``)


def n_params(arch: str, num_classes: int, channels: int, cifar_stem: bool = True) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_classifier(arch, num_classes, channels, cifar_stem).parameters())


def _device(cfg: ClassifierConfig) -> str:
    return cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")


def batching_on(cfg: ClassifierConfig, num_classes: int, channels: int) -> tuple[bool, str]:
    """Whether runs of this config are trained batched, and why. ``IMBALANCE_LAB_BATCHED``: on | off | auto.

    auto: on a GPU for models up to MAX_PARAMS; off on a CPU, where one small model already keeps a
    core busy with arithmetic (bench/classifier_flops.py measured batched K = 2…8 no faster per model
    than one at a time, see BENCHMARKS.md), so the simple path is kept there."""
    mode = os.environ.get(ENV, "auto").strip().lower()
    if mode not in ("on", "off", "auto"):
        raise ConfigError(f"{ENV}={mode!r} is not on, off or auto.", f"Unset {ENV} or set it to on, off or auto.")
    if mode != "auto":
        return mode == "on", f"{ENV}={mode}"
    if not _device(cfg).startswith("cuda"):
        return False, "auto: CPU (batching measured not to pay there)"
    p = n_params(cfg.arch, num_classes, channels, cfg.cifar_stem)
    if p > MAX_PARAMS:
        return False, f"auto: {cfg.arch} has {p / 1e6:.1f} M parameters > {MAX_PARAMS / 1e6:g} M"
    return True, f"auto: GPU, {cfg.arch} has {p / 1e6:.2f} M parameters"


def _key(cfg: ClassifierConfig, n: int) -> tuple:
    """What runs must share to be one computation (batch b = min(batch_size, n) as in schedule())."""
    return (cfg.arch, cfg.cifar_stem, min(cfg.batch_size, n), cfg.momentum, cfg.nesterov, cfg.weight_decay, cfg.precision, _device(cfg),
            cfg.data.dataset, cfg.data.image_size)


def compatible(jobs: list[BatchJob], sizes: list[int]) -> str | None:
    """None when the runs can train as one computation, else the reason they cannot."""
    if any(j.cfg.train_mix != "none" for j in jobs):
        return "training-time MixUp/CutMix draw from torch's global generator one model at a time"
    if len({_key(j.cfg, n) for j, n in zip(jobs, sizes)}) > 1:
        return "the runs differ in architecture, batch size, image shape, device, precision or optimizer settings"
    return None


class _Member:
    """One run inside a batch: its set-up, its per-model mirror (module, SGD, LambdaLR) and where it is."""

    def __init__(self, i: int, su: RunSetup, resume: bool):
        self.i, self.su, self.cfg = i, su, su.cfg
        self.model, self.opt, self.sched, self.epoch, self.step = new_model(su, resume)
        self.total, self.spe, self.bs = su.plan["steps"], su.plan["steps_per_epoch"], su.plan["batch_size"]
        self.s, self.steps_now, self.session = 0, 0, 0
        self.g, self.perm, self.loss_sum, self.seen, self.t_epoch, self.last_loss = None, None, None, 0, 0.0, float("nan")

    def lr(self, step: int) -> float:
        c = self.cfg
        return c.lr * (lr_at(step, self.total, self.su.plan["warmup_steps"], c.lr) / c.lr)  # as LambdaLR computes it

    def begin_epoch(self, device) -> None:
        seed = self.cfg.seed * 100_003 + self.epoch
        self.g = torch.Generator(device=device).manual_seed(seed)
        self.perm = torch.randperm(len(self.su.train_set), device=device, generator=self.g)
        self.loss_sum, self.seen, self.t_epoch = torch.zeros((), device=device), 0, time.time()
        self.steps_now = min(self.spe, self.total - self.epoch * self.spe)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = self.perm[self.s * self.bs : (self.s + 1) * self.bs]
        return self.su.aug(self.su.images[idx], generator=self.g).to(self.su.dtype), self.su.targets[idx], self.su.weights[idx]


class _Stack:
    """The batch's stacked state: parameters (leaves with a model axis), buffers, momentum."""

    def __init__(self, members: list[_Member]):
        self.names = [n for n, _ in members[0].model.named_parameters()]
        plist = [list(m.model.parameters()) for m in members]
        bufs = [dict(m.model.named_buffers()) for m in members]
        self.params = {n: torch.stack([ps[j].detach() for ps in plist]).requires_grad_() for j, n in enumerate(self.names)}
        self.bufs = {n: torch.stack([b[n] for b in bufs]) for n in bufs[0]}
        moms = [[m.opt.state.get(p, {}).get("momentum_buffer") for p in ps] for m, ps in zip(members, plist)]
        self.has_mom = [all(b is not None for b in mb) for mb in moms]
        self.mom = {n: torch.stack([mb[j] if h else torch.zeros_like(ps[j]) for mb, h, ps in zip(moms, self.has_mom, plist)]).detach()
                    for j, n in enumerate(self.names)}
        self.base = copy.deepcopy(members[0].model).to("meta")
        self.base.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, vmap

        return vmap(lambda p, b, xi: functional_call(self.base, (p, b), (xi,)))(self.params, self.bufs, x)

    @torch.no_grad()
    def sgd(self, members: list[_Member], lrs: list[float]) -> None:
        """torch.optim.SGD's update (weight decay, momentum, Nesterov; dampening 0) on the stacked tensors,
        each model at its own learning rate; a model's first step starts its momentum at the gradient."""
        c = members[0].cfg
        mom, nesterov = c.momentum, c.nesterov and c.momentum > 0
        first = torch.tensor([not h for h in self.has_mom], device=self.params[self.names[0]].device)
        for n in self.names:
            p = self.params[n]
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad if not c.weight_decay else p.grad.add(p, alpha=c.weight_decay)
            if mom:
                buf = torch.where(first.view(shape), g, self.mom[n].mul(mom).add(g))
                self.mom[n] = buf
                g = g.add(buf, alpha=mom) if nesterov else buf
            for k, lr in enumerate(lrs):  # param.add_(grad, alpha=-lr) as torch.optim.SGD rounds it (one fused multiply-add)
                p[k].add_(g[k], alpha=-lr)
            p.grad = None
        self.has_mom = [bool(mom)] * len(self.has_mom)

    @torch.no_grad()
    def to_mirror(self, k: int, m: _Member) -> None:
        """Copy model k's slice into its mirror module, SGD state and LambdaLR (for checkpoints and evaluation)."""
        for n, p in m.model.named_parameters():
            p.copy_(self.params[n][k])
            if self.has_mom[k]:
                m.opt.state[p]["momentum_buffer"] = self.mom[n][k].clone()
        for n, b in m.model.named_buffers():
            b.copy_(self.bufs[n][k])
        lr = m.lr(m.step)
        m.sched.last_epoch, m.sched._step_count, m.sched._last_lr = m.step, m.step + 1, [lr]
        for grp in m.opt.param_groups:
            grp["lr"] = lr

    def keep(self, rows: list[int]) -> None:
        """Drop the models that left the batch (keep these rows)."""
        idx = torch.tensor(rows, device=self.params[self.names[0]].device)
        self.params = {n: p.detach().index_select(0, idx).requires_grad_() for n, p in self.params.items()}
        self.bufs = {n: b.index_select(0, idx) for n, b in self.bufs.items()}
        self.mom = {n: b.index_select(0, idx) for n, b in self.mom.items()}
        self.has_mom = [self.has_mom[r] for r in rows]


def train_batched(jobs: list[BatchJob], dataset: LoadedDataset | None = None, callbacks: Callbacks | None = None,
                  resume: bool = True) -> list[dict]:
    """Train the jobs' runs as one computation; returns each run's result, as ``train_classifier`` would
    (results.json of a finished run; ``{"cancelled": True, ...}`` for the runs a stop interrupted)."""
    cb = callbacks or Callbacks()
    if not jobs:
        return []
    device = torch.device(_device(jobs[0].cfg))
    for j in jobs:
        j.cfg.validate()
    results: list[dict | None] = [None] * len(jobs)
    members: list[_Member] = []
    for i, j in enumerate(jobs):
        su = prepare_run(j.cfg, j.run_dir, resume, j.train_set, dataset, j.train_set_info, device, validation=j.validation)
        if isinstance(su, RunSetup):
            members.append(_Member(i, su, resume))
        else:
            results[i] = su
    why = compatible([jobs[m.i] for m in members], [len(m.su.train_set) for m in members])
    if why:
        raise ConfigError(f"These runs cannot train as one computation: {why}.", "Train them apart (core.train.classifier.train_classifier).")
    bf16 = device.type == "cuda" and jobs[0].cfg.precision in ("auto", "bf16")
    precision = "bf16" if bf16 else "fp64" if jobs[0].cfg.precision == "fp64" else "no"
    for m in members:
        m.su.run.set_status("running", epoch=m.epoch, epochs=m.su.n_epochs, step=m.step, total=m.total, message=f"training ({len(members)} batched)")
    members = [m for m in members if not _finished(m, results, jobs, device, precision, None, -1)]
    stack = _Stack(members) if members else None
    t_start, big = time.time(), max((m.total for m in members), default=0)
    while members:
        if cb.stop_requested():
            for m in members:
                m.su.run.set_status("cancelled", message=f"stopped in epoch {m.epoch + 1}; resume continues after the last saved epoch")
                results[m.i] = {"cancelled": True, "epoch": m.epoch, "run_dir": str(m.su.run_dir)}
            return results
        xs, ys, ws = [], [], []
        for m in members:
            if m.s == 0:
                m.begin_epoch(device)
            x, y, w = m.batch()
            xs.append(x), ys.append(y), ws.append(w)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = stack.forward(torch.stack(xs))
        losses = [m.su.loss_fn(logits[k], ys[k], ws[k]) for k, m in enumerate(members)]
        torch.stack(losses).sum().backward()
        stack.sgd(members, [m.lr(m.step) for m in members])
        keep = []
        for k, m in enumerate(members):
            loss = losses[k].detach()
            m.step, m.session, m.seen = m.step + 1, m.session + 1, m.seen + m.bs
            m.loss_sum += loss
            if (m.s % 25 == 0 or m.s == m.steps_now - 1) and not torch.isfinite(m.loss_sum):
                raise non_finite(m.su, float(loss), m.epoch, m.step)
            m.s += 1
            if m.s == m.steps_now:
                if not _end_epoch(m, k, stack, cb, device, t_start) or not _finished(m, results, jobs, device, precision, stack, k):
                    keep.append(k)
            else:
                keep.append(k)
        lead = max(members, key=lambda m: m.total)
        if lead.s % 25 == 0:
            el = time.time() - t_start
            cb.progress(lead.step, big, f"{len(members)} runs batched, step {lead.step}/{big}, loss {float(losses[members.index(lead)].detach()):.3f}, "
                                        f"ETA {el / max(lead.session, 1) * (big - lead.step):.0f} s")
        if len(keep) < len(members):
            members = [members[k] for k in keep]
            if members:
                stack.keep(keep)
    return results


def _end_epoch(m: _Member, k: int, stack: _Stack, cb: Callbacks, device, t_start: float) -> bool:
    """The epoch's bookkeeping (same rows, checkpoint and status as train_classifier). True when it was the run's last epoch."""
    stack.to_mirror(k, m)
    m.last_loss = float(m.loss_sum) / max(m.steps_now, 1)
    row = {"epoch": m.epoch + 1, "step": m.step, "loss": m.last_loss, "lr": m.opt.param_groups[0]["lr"],
           "images_per_s": m.seen / max(time.time() - m.t_epoch, 1e-9)}
    end_epoch(m.su, m.epoch, m.step, row, m.model, m.opt, m.sched, cb, device, time.time() - t_start, m.session)
    m.epoch, m.s = m.epoch + 1, 0
    return m.epoch >= m.su.n_epochs


def _finished(m: _Member, results: list, jobs: list[BatchJob], device, precision: str, stack: _Stack | None, k: int) -> bool:
    """If the run has taken all its steps: its final evaluation and results.json (from its mirror). True when done."""
    if m.epoch < m.su.n_epochs:
        return False
    if stack is not None:
        stack.to_mirror(k, m)
    extra = jobs[m.i].extra_results
    extra = extra(results) if callable(extra) else extra
    results[m.i] = finish_run(m.su, m.model, m.step, m.last_loss, device, precision, extra)
    return True


def train_runs(jobs: list[BatchJob], dataset: LoadedDataset | None = None, callbacks: Callbacks | None = None, resume: bool = True) -> list[dict]:
    """The jobs' runs, batched where ``batching_on`` and ``compatible`` allow, else one after the other
    with ``train_classifier`` (the simple path); a stop ends the loop at the first cancelled run."""
    if jobs and all(j.train_set is not None for j in jobs):
        t0 = jobs[0].train_set
        on, _ = batching_on(jobs[0].cfg, t0.num_classes, t0.channels)
        if on and len(jobs) > 1 and compatible(jobs, [len(j.train_set) for j in jobs]) is None:
            return train_batched(jobs, dataset, callbacks, resume)
    results: list[dict | None] = [None] * len(jobs)
    for i, j in enumerate(jobs):
        extra = j.extra_results(results) if callable(j.extra_results) else j.extra_results
        results[i] = train_classifier(j.cfg, j.run_dir, callbacks=callbacks, resume=resume, train_set=j.train_set, dataset=dataset,
                                      train_set_info=j.train_set_info, extra_results=extra, validation=j.validation)
        if results[i].get("cancelled"):
            break
    return results
