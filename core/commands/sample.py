"""``python -m core sample``: sample a trained CFG run with classifier-free guidance."""

from __future__ import annotations

import argparse
import json
import time

from core.data.imageset import ImageSet
from core.callbacks import ProgressBar
from core.commands.data_flags import add_json_argument, add_overwrite_argument, add_sample_steps, check_flag_ranges, check_out
from core.commands.config_file import add_config_argument
from core.diffusion.samplers import DEFAULT_STEPS, SAMPLERS
from core.errors import ConfigError
from core.generators.base import image_seed, resolve_class

HELP = "Generate images of chosen classes from a trained CFG run; writes one PNG per image plus samples.npz."


def add_arguments(p) -> None:
    p.add_argument("--run", default=None, help="run folder made by `python -m core train-cfg` (or one of its checkpoint folders); required unless --config names it")
    p.add_argument("--checkpoint", default="latest", choices=["latest", "best"], help="which checkpoint of the run to use")
    p.add_argument("--classes", default=None, help="comma-separated class indices or names (default: every class)")
    p.add_argument("--n", type=int, default=16, help="images per class")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--w", type=float, default=None, help="the paper's guidance strength w (Eq. 8): 0 = plain conditional; paper: 0.1 and 7.5 (default 0)")
    w.add_argument("--guidance-scale", type=float, default=None, help="diffusers' guidance_scale = 1 + w, as an alternative to --w (>= 1)")
    p.add_argument("--w-per-class", default=None, help="comma-separated w, one per class (tail-aware guidance; overrides --w)")
    p.add_argument("--w-gamma", type=float, default=0.0, help="per-class w_c = w·(n_max/n_c)^γ from the run's training counts (0 = one w for every class)")
    p.add_argument("--w-max", type=float, default=None, help="cap of the per-class w_c under --w-gamma")
    p.add_argument("--sampler", default="dpm", choices=list(SAMPLERS), help="; ".join(f"{k}: {v}" for k, v in SAMPLERS.items()))
    add_sample_steps(p, None, f"sampler steps (default: {', '.join(f'{k} {v}' for k, v in DEFAULT_STEPS.items())})")
    p.add_argument("--seed", type=int, default=0, help="seed; image j of class c uses its own seed derived from (seed, c, j)")
    p.add_argument("--batch-size", type=int, default=None, help="images per sampling batch; never changes the images (default: 256 on a GPU, 64 on a CPU)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    p.add_argument("--out", default=None, help="output folder (required; refused if it holds files, unless --overwrite): <class>/<j>_seed<s>.png, samples.npz, params.json")
    add_overwrite_argument(p)
    add_json_argument(p, "what was written (out, images, seconds, w)")
    add_config_argument(p, None, config_defaults, known=RECORDED)


# each flag's range: a study's [cfg_sample] keys (core.settings.bounds.CONFIG_BOUNDS), images per class and the seed as the app's
RANGES = {"--n": ("app", "count"), "--seed": ("app", "seed"), "--w": ("cfg_sample", "w"), "--w-per-class": ("cfg_sample", "w_per_class"),
          "--w-gamma": ("cfg_sample", "w_gamma"), "--w-max": ("cfg_sample", "w_max"), "--sample-steps": ("cfg_sample", "steps"),
          "--batch-size": ("cfg_sample", "batch_size")}
RECORDED = ("name", "trained_steps", "w_rule", "count", "counts", "seconds")  # what params.json records besides the settings


def _csv(v) -> str | None:
    return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v


def config_defaults(d: dict) -> dict:
    """A sample folder's params.json (or JSON/TOML with these flags' names) -> the flag defaults (``--config``).
    params.json's ``w_per_class`` is the per-class w it used, so a γ rule comes back as those exact values."""
    keys = ("run", "checkpoint", "classes", "n", "w", "guidance_scale", "w_per_class", "w_gamma", "w_max", "sampler", "steps", "seed",
            "batch_size", "device", "out")
    out = {k: d[k] for k in keys if k in d}
    if "steps" in out:  # params.json: the sampler's steps
        out["sample_steps"] = out.pop("steps")
    if "run_dir" in d:
        out["run"] = d["run_dir"]
    if "w" in out:  # params.json has both; an explicit --w must not lose to the file's guidance_scale
        out.pop("guidance_scale", None)
    if out.get("w_per_class") is not None:  # already applied: not again through the γ rule
        out["w_gamma"], out["w_max"] = 0.0, None
    for k in ("classes", "w_per_class"):
        if k in out:
            out[k] = _csv(out[k])
    return out


def run(args: argparse.Namespace) -> int:
    from core.generators.cfg import CFGGenerator, save_samples

    for flag in ("run", "out"):
        if not getattr(args, flag):
            raise ConfigError(f"--{flag} is missing.", f"Pass --{flag} (or a --config file that names it).")
    check_out(args.out, args.overwrite)  # never silently into a folder that holds files

    if args.guidance_scale is not None:
        if args.guidance_scale < 1:
            raise ConfigError(f"--guidance-scale {args.guidance_scale} is below 1 (it is 1 + w, and w must be >= 0).", "Use --guidance-scale >= 1, or give --w directly.")
        w = args.guidance_scale - 1.0
    else:
        w = 0.0 if args.w is None else args.w
    steps = DEFAULT_STEPS[args.sampler] if args.sample_steps is None else args.sample_steps
    w_per_class = None
    if args.w_per_class:
        try:
            w_per_class = [float(x) for x in args.w_per_class.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"--w-per-class '{args.w_per_class}' is not a comma-separated list of numbers.", "Pass e.g. --w-per-class 4,4,2,1,0,0,0,0,0,0.") from None
    check_flag_ranges(argparse.Namespace(**{**vars(args), "w": w, "w_per_class": w_per_class}), RANGES)
    gen = CFGGenerator(args.run, w=w, sampler=args.sampler, steps=steps, batch_size=args.batch_size, device=args.device, checkpoint=args.checkpoint,
                       w_per_class=w_per_class, w_gamma=args.w_gamma, w_max=args.w_max)
    specs = [s.strip() for s in args.classes.split(",") if s.strip()] if args.classes else [str(i) for i in range(len(gen.classes))]
    if not specs:
        raise ConfigError("--classes is empty.", "Pass e.g. --classes 0,1 or leave it out for every class.")
    classes = [resolve_class(s, gen.classes) for s in specs]
    t0, parts, seeds = time.time(), [], []
    bar = ProgressBar("sample", unit="img", disable=args.verbosity < 0)
    for i, c in enumerate(classes):
        def progress(done, total, i=i, c=c):
            bar(i * args.n + done, len(classes) * args.n, f"class {gen.classes[c]}")

        parts.append(gen.generate(c, args.n, seed=args.seed, progress=progress))
        seeds += [image_seed(args.seed, c, j) for j in range(args.n)]
    bar.close()
    images = ImageSet.concat(parts)
    secs = time.time() - t0
    params = {**gen.describe(), "classes": [gen.classes[c] for c in classes], "n": args.n, "seed": args.seed, "seconds": round(secs, 2)}
    out = save_samples(images, args.out, params, seeds=seeds)
    if args.json:
        print(json.dumps({"out": str(out), "images": len(images), "seconds": round(secs, 2), "w": w, "guidance_scale": 1 + w, "w_rule": gen.w_rule}))
        return 0
    rule = f", {gen.w_rule}" if gen.w_rule else ""
    print(f"wrote {len(images)} images ({len(images) / max(secs, 1e-9):.1f} img/s, w={w:g}, guidance_scale={1 + w:g}{rule}) to {out}")
    return 0
