"""``python -m core sample-sd``: Stable Diffusion images of chosen classes, at the dataset's size.

Writes OUT/<class name>/<j>.png (an ImageFolder the lab can read back), OUT/grid.png and
OUT/params.json (every setting, both guidance conventions, per-class filter statistics).
Under ``accelerate launch`` each process renders its shard of the seeds; the main process
writes the files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from core.store.atomic import atomic_write_json
from core.data.loading import DATASETS, DataConfig
from core.commands.data_flags import add_json_argument, add_overwrite_argument, add_sample_steps, check_flag_ranges
from core.commands.config_file import add_config_argument, add_deprecated
from core.errors import ConfigError
from core.generators.base import resolve_class
from core.generators.sd import DEFAULT_MODEL, KNOWN_MODELS, SCHEDULERS
from core.paths import runs_dir

HELP = "Generate class images with a pretrained Stable Diffusion model (prompted by class name), resized to the dataset."


def add_arguments(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("model")
    m.add_argument("--model", default=DEFAULT_MODEL, help=f"hub id (looked up in models/<name> first, then the Hugging Face cache) or a diffusers pipeline folder; known: {', '.join(KNOWN_MODELS)}")
    m.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="auto: fp16 on a GPU, fp32 on the CPU")
    m.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: the best available; the process's GPU under accelerate)")
    m.add_argument("--attention-slicing", action="store_true", help="compute attention in slices (less GPU memory, slower)")
    m.add_argument("--vae-tiling", action="store_true", help="decode latents in tiles/slices (less GPU memory)")
    m.add_argument("--cpu-offload", action="store_true", help="keep only the running sub-model on the GPU (least memory, slowest)")
    m.add_argument("--safety-checker", action="store_true", help="run the model's NSFW checker and drop flagged images (off by default: it blacks images out)")

    d = p.add_argument_group("classes and target size")
    d.add_argument("--dataset", default=None, choices=DATASETS, help="take class names, resolution and channels from this dataset")
    d.add_argument("--data-dir", default=None, help="the dataset's folder or .zip (ImageFolder or torchvision root)")
    d.add_argument("--image-size", type=int, default=None, help="output size in pixels (default: the dataset's, or 32 with --class-names)")
    d.add_argument("--class-names", default=None, help="comma-separated class names, instead of --dataset")
    d.add_argument("--channels", type=int, default=3, choices=[1, 3], help="output channels with --class-names (1 = grayscale)")
    d.add_argument("--classes", default=None, help="comma-separated class indices or names to generate (default: all)")

    s = p.add_argument_group("sampling")
    s.add_argument("--n", type=int, default=8, help="images per class")
    s.add_argument("--prompt", default="a photo of a {class}", help="prompt template; {class} becomes the class name")
    s.add_argument("--class-prompt", action="append", default=[], metavar="CLASS=PROMPT", help="prompt for one class (name or index), repeatable")
    s.add_argument("--negative-prompt", default="", help="what to steer away from (only used when w > 0)")
    add_sample_steps(s, 25, "sampler steps (SD 1.5: 20-50; SD-Turbo: 1-4)")
    s.add_argument("--w", type=float, default=6.5, help="guidance in the paper's convention (w=0: no guidance); diffusers' guidance_scale = 1 + w (6.5 -> 7.5)")
    s.add_argument("--sampler", default="dpm++", choices=list(SCHEDULERS), help="the diffusers scheduler; 'model' keeps the model's own (e.g. SD-Turbo's)")
    add_deprecated(s, "--scheduler", "sampler", "--scheduler is deprecated and will be removed in the next release: use --sampler (its name in every command).",
                   choices=list(SCHEDULERS))
    s.add_argument("--seed", type=int, default=0, help="image j of class c uses a seed derived from (seed, c, j)")
    s.add_argument("--batch-size", type=int, default=8, help="images per pipeline call and process (does not change the images)")
    s.add_argument("--resolution", type=int, default=None, help="generation size in pixels (default: the model's native size, 512 for SD 1.5)")

    f = p.add_argument_group("filtering")
    f.add_argument("--filter", action="store_true", help="drop images the dataset's judge classifier (core.metrics.judge) assigns to another class; needs --dataset")
    f.add_argument("--max-attempts", type=float, default=4.0, help="at most this many candidates per requested image when filtering")

    p.add_argument("--out", default=None, help="output folder (default: runs/sd-samples-<time>; refused if it holds samples, unless --overwrite)")
    add_overwrite_argument(p)
    add_json_argument(p, "what was written (out, images, seconds, images_per_s)")
    add_config_argument(p)


def _class_prompts(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, prompt = item.partition("=")
        if not sep or not key.strip() or not prompt.strip():
            raise ConfigError(f"--class-prompt '{item}' is not CLASS=PROMPT.", "Write e.g. --class-prompt 'cat=a photo of a tabby cat'.")
        out[key.strip()] = prompt.strip()
    return out


def _target(args) -> tuple[list[str], int, int, DataConfig | None]:
    """Class names, image size and channels, from --dataset or --class-names."""
    if args.dataset:
        from core.data.loading import load_dataset

        cfg = DataConfig(dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size)
        ds = load_dataset(cfg)
        return list(ds.classes), int(ds.image_size), int(ds.channels), cfg
    if args.class_names:
        names = [c.strip() for c in args.class_names.split(",") if c.strip()]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(f"--class-names '{args.class_names}' must be distinct, non-empty names.", "Write e.g. --class-names airplane,automobile,bird.")
        return names, int(args.image_size or 32), int(args.channels), None
    raise ConfigError("No classes to prompt for.", "Pass --dataset (e.g. --dataset cifar10 --data-dir PATH) or --class-names airplane,automobile,...")


def _eta_printer(label: str):
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        dt = time.perf_counter() - t0
        rate = done / dt if dt > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        print(f"  {label}: {done}/{total} images, {rate:.2f} img/s, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    return progress


def run(args) -> int:
    from core.generators.sd import SDGenerator, distribution, resolve

    # the ranges of a study's [method_params.sd] keys (core.settings.bounds.CONFIG_BOUNDS), images per class, size and seed as the app's
    check_flag_ranges(args, {"--n": ("app", "count"), "--image-size": ("app", "image_size"), "--seed": ("app", "seed"),
                             "--w": ("method_params.sd", "w"), "--sample-steps": ("method_params.sd", "steps"),
                             "--batch-size": ("method_params.sd", "batch_size"), "--resolution": ("method_params.sd", "resolution"),
                             "--max-attempts": ("method_params.sd", "max_attempts")})
    if args.filter and not args.dataset:
        raise ConfigError("--filter needs --dataset: the judge classifier is trained on that dataset's real images.", "Add --dataset (and --data-dir), or drop --filter.")
    resolve(args.model)  # missing weights fail before a large dataset is decoded
    classes, size, channels, data_cfg = _target(args)
    wanted = [resolve_class(c.strip(), classes) for c in args.classes.split(",") if c.strip()] if args.classes else list(range(len(classes)))
    out = Path(args.out) if args.out else runs_dir() / f"sd-samples-{datetime.now():%Y%m%d-%H%M%S}"
    if (out / "params.json").exists() and not args.overwrite:
        raise ConfigError(f"{out} already holds samples (params.json).", "Choose another --out, or pass --overwrite to replace same-named files.")

    judge = None
    if args.filter:
        try:
            from core.metrics.judge import get_judge
        except ImportError as exc:
            raise ConfigError("Filtering needs core.metrics.judge, which is not available in this install.", "Run without --filter.") from exc
        judge = get_judge(data_cfg)

    gen = SDGenerator(
        classes=classes, channels=channels, image_size=size, model=args.model, prompt=args.prompt,
        class_prompts=_class_prompts(args.class_prompt), negative_prompt=args.negative_prompt, w=args.w,
        steps=args.sample_steps, scheduler=args.sampler, batch_size=args.batch_size, resolution=args.resolution,
        dtype=args.dtype, device=args.device, attention_slicing=args.attention_slicing, vae_tiling=args.vae_tiling,
        cpu_offload=args.cpu_offload, safety_checker=args.safety_checker, filter_classifier=judge, max_attempts=args.max_attempts,
    )
    rank, world, _, _ = distribution()
    main = rank == 0
    if main:
        note = "" if gen.cfg_active else " (guidance off)"
        print(f"{gen.model} from {gen.source.kind} {gen.source.location}: w={gen.w:g} (guidance_scale={gen.guidance_scale:g}){note}, "
              f"{gen.steps} steps, {gen.scheduler}, {len(wanted)} classes x {args.n} images -> {size}x{size}x{channels}, {world} process(es)",
              file=sys.stderr, flush=True)
        if args.negative_prompt and not gen.cfg_active:
            print("  note: the negative prompt is ignored while w <= 0 (no guidance)", file=sys.stderr)

    t0 = time.perf_counter()
    sets = []
    for c in wanted:
        sets.append(gen.generate(c, args.n, seed=args.seed, progress=_eta_printer(classes[c]) if main else None))
    seconds = time.perf_counter() - t0
    if not main:
        return 0

    import torch
    from PIL import Image
    from torchvision.utils import make_grid

    out.mkdir(parents=True, exist_ok=True)
    for c, s in zip(wanted, sets):
        folder = out / classes[c]
        folder.mkdir(exist_ok=True)
        for j, img in enumerate(s.images):
            arr = img.permute(1, 2, 0).numpy()
            Image.fromarray(arr[..., 0] if channels == 1 else arr).save(folder / f"{j:05d}.png")
    grid = make_grid(torch.cat([s.images for s in sets]), nrow=args.n, padding=1)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(out / "grid.png")
    params = {
        **gen.describe(),
        "classes": classes,
        "generated_classes": [classes[c] for c in wanted],
        "n_per_class": args.n,
        "seed": args.seed,
        "processes": world,
        "rendered_by_main_process": gen.rendered,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(wanted) * args.n / seconds, 4) if seconds > 0 else None,
        "dataset": data_cfg.to_dict() if data_cfg else None,
    }
    atomic_write_json(out / "params.json", params)
    for name, st in params["filter_stats"].items():
        if judge is not None or args.safety_checker:
            print(f"  {name}: rejected {st['rejected']} of {st['candidates']} candidates ({st['rejection_rate']:.0%})", file=sys.stderr)
    result = {"out": str(out), "images": len(wanted) * args.n, "seconds": params["seconds"], "images_per_s": params["images_per_s"]}
    print(json.dumps(result) if args.json else f"wrote {result['images']} images ({result['images_per_s']} img/s) to {out}")
    return 0
