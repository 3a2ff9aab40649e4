"""``python -m core train-cfg``: train the class-conditional CFG diffusion model."""

from __future__ import annotations

import json
import sys
import time

from core.store.atomic import read_json
from core.callbacks import Callbacks, ProgressBar
from core.commands.data_flags import add_data_arguments, add_json_argument, add_tracking_argument, data_defaults, data_dict, log_with
from core.commands.config_file import add_config_argument, without
from core.diffusion.samplers import BETA_SCHEDULES, SAMPLERS
from core.nets.unet import PRESET_HELP, PRESETS
from core.paths import runs_dir

HELP = "Train a class-conditional diffusion model with classifier-free guidance (label dropout) on the imbalanced train split."


def add_arguments(p) -> None:
    add_data_arguments(p)
    g = p.add_argument_group("model and training")
    g.add_argument("--preset", default="tiny", choices=list(PRESETS), help="network size: " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()))
    g.add_argument("--steps", type=int, default=None, help="optimizer steps in total (default 3000; with --resume: the run's own count unless given)")
    g.add_argument("--batch-size", type=int, default=64, help="images per step (per process under torchrun/accelerate)")
    g.add_argument("--lr", type=float, default=None, help="AdamW peak learning rate (default: tiny 1e-3, small/ddpm 2e-4)")
    g.add_argument("--p-uncond", type=float, default=0.1, help="label dropout: probability of training on the null label (the unconditional branch)")
    g.add_argument("--beta-schedule", default="linear", choices=list(BETA_SCHEDULES), help="noise schedule β_t, T = 1000")
    g.add_argument("--ema-decay", type=float, default=0.9995, help="largest EMA decay of the weights used for sampling")
    g.add_argument("--warmup-steps", type=int, default=200, help="linear learning-rate warm-up, steps")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient L2 norm (0 = off)")
    g.add_argument("--uniform-classes", action="store_true", help="draw classes uniformly so minorities are seen as often as majorities")
    g.add_argument("--cbdm-tau", type=float, default=0.0, help="CBDM regulariser strength τ (Qin et al. 2023): pulls ε(x_t, y) towards ε(x_t, y'), weight t/T·τ; 0 = off; one extra forward pass per step")
    g.add_argument("--cbdm-target", default="train", choices=["train", "uniform"], help="distribution of CBDM's y': the training class frequencies (reference code) or uniform (its fine-tuning mode)")
    g.add_argument("--preview-every", type=int, default=500, help="steps between preview grids (one row per class); 0 = only at the end")
    g.add_argument("--preview-sampler", default="dpm", choices=list(SAMPLERS), help="sampler of the previews")
    g.add_argument("--preview-steps", type=int, default=25, help="sampler steps of the previews")
    g.add_argument("--preview-w", type=float, default=1.0, help="the paper's guidance w of the previews (diffusers guidance_scale = 1 + w)")
    g.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (latest and best); 0 = only at the end")
    g.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; training ends (done) when it is reached")
    g.add_argument("--train-seed", type=int, default=0, help="seed of the training randomness (init, batches, noise); --data-seed picks the data subset")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    p.add_argument("--out", default=None, help="run folder to create (default: a new folder under runs/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint with its own settings")
    add_tracking_argument(p)
    add_json_argument(p, "the run's end state (state, message, run folder, steps)")
    add_config_argument(p, "cfg", config_defaults, known=_fields)


def _fields() -> list[str]:
    """The keys a cfg run's config.json holds (CFGTrainConfig's fields), all valid in a --config file."""
    from core.train.cfg_unet import CFGTrainConfig

    return list(CFGTrainConfig.__dataclass_fields__)


# flag dest -> CFGTrainConfig field, where the names agree
FIELDS = ("preset", "steps", "batch_size", "lr", "p_uncond", "beta_schedule", "ema_decay", "warmup_steps", "grad_clip", "uniform_classes",
          "cbdm_tau", "cbdm_target", "preview_every", "preview_sampler", "preview_steps", "preview_w", "checkpoint_every", "device", "log_with")


def config_defaults(d: dict) -> dict:
    """A saved cfg run's config.json -> this command's flag defaults (``--config``)."""
    out = {**data_defaults(d.get("data") or {}), **{k: d[k] for k in FIELDS if k in d}}
    if "seed" in d:
        out["train_seed"] = d["seed"]
    if "max_seconds" in d:
        out["max_minutes"] = d["max_seconds"] / 60 if d["max_seconds"] else None
    return out


def run(args) -> int:
    from core.train.cfg_unet import CFGTrainConfig, train_cfg

    out = args.out or str(runs_dir() / time.strftime("%Y%m%d-%H%M%S-cfg"))
    stored = read_json(f"{out}/config.json") if args.resume else None
    if stored and stored.get("kind") == "cfg":
        # Resume with the run's own settings; only --steps, --device, --max-minutes and --log-with change.
        cfg = CFGTrainConfig.from_dict(stored)
        if args.steps is not None:
            cfg.steps = args.steps
        cfg.device = args.device or cfg.device
        cfg.max_seconds = args.max_minutes * 60 if args.max_minutes else None
        if args.log_with is not None:
            cfg.log_with = log_with(args)
        print(f"resuming {out} with its saved settings (steps={cfg.steps})", file=sys.stderr)
    else:
        # --config: the file's settings (also those without a flag), then every flag's value over them
        fields = {k: getattr(args, k) for k in FIELDS}
        fields.update(steps=args.steps if args.steps is not None else 3000, seed=args.train_seed, log_with=log_with(args),
                      max_seconds=args.max_minutes * 60 if args.max_minutes else None)
        cfg = CFGTrainConfig.from_dict({**without(args.config_dict, "kind", "created"), **fields, "data": data_dict(args)})
    quiet = args.verbosity < 0 or args.json
    bar = ProgressBar("train-cfg", unit="step", disable=quiet)

    def on_metrics(row: dict) -> None:
        if not quiet:
            bar.write(f"step {row['step']:>6}/{cfg.steps}  loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s")

    def on_preview(path) -> None:
        if not quiet:
            bar.write(f"preview {path}")

    try:
        path = train_cfg(cfg, out, Callbacks(on_metrics=on_metrics, on_preview=on_preview, on_progress=bar), resume=args.resume)
    finally:
        bar.close()
    status = read_json(path / "status.json", {}) or {}
    if args.json:
        print(json.dumps({"state": status.get("state"), "message": status.get("message"), "run": str(path), "steps": cfg.steps,
                          "step": status.get("step")}))
        return 0
    print(f"{status.get('state', '?')}: {status.get('message', '')} -> {path}")
    return 0
