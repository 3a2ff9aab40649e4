"""``python -m core trajectory``: watch guidance shape one image, headless (the Guidance page's denoising view)."""

from __future__ import annotations

import argparse

from core.commands.data_flags import add_json_argument, add_overwrite_argument, add_sample_steps, check_flag_ranges, check_out
from core.commands.config_file import add_config_argument
from core.diffusion.samplers import SAMPLERS
from core.errors import ConfigError

HELP = ("Denoise one image of one class from one seed for 1-3 values of w: trajectory.npz (x_t, x̂₀, ε per step), "
        "trajectory.png (a row per w: x̂₀ at every step, then the sample) and params.json.")
MAX_WS, MAX_STEPS = 3, 1000  # columns of w (the page's own limit); sampler steps (a CPU takes minutes at 1000)


def add_arguments(p) -> None:
    p.add_argument("--run", default=None, help="run folder made by `python -m core train-cfg` (required)")
    p.add_argument("--checkpoint", default="latest", choices=["latest", "best"], help="which checkpoint of the run to use")
    p.add_argument("--class", dest="class_", default="0", help="class index or name")
    p.add_argument("--w", default="0,7.5", help=f"1 to {MAX_WS} comma-separated values of the paper's w (Eq. 8; guidance_scale = 1 + w)")
    p.add_argument("--seed", type=int, default=0, help="the starting noise (the same for every w)")
    p.add_argument("--sampler", default="dpm", choices=list(SAMPLERS), help="; ".join(f"{k}: {v}" for k, v in SAMPLERS.items()))
    add_sample_steps(p, 25, f"sampler steps, 1 to {MAX_STEPS}")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    p.add_argument("--out", default=None, help="output folder (required; refused if it holds files, unless --overwrite)")
    add_overwrite_argument(p)
    add_json_argument(p, "what was written (out, class, steps, the mean guidance norm per w)")
    add_config_argument(p, None, config_defaults, known=("class_idx", "guidance_scales"))


def config_defaults(d: dict) -> dict:
    """A trajectory's params.json (or JSON/TOML with these flags' names) -> the flag defaults (``--config``)."""
    out = {k: d[k] for k in ("run", "checkpoint", "seed", "sampler", "device", "out") if k in d}
    if "steps" in d:  # params.json: the sampler's steps
        out["sample_steps"] = d["steps"]
    if "ws" in d:
        out["w"] = ",".join(str(w) for w in d["ws"])
    if "class" in d:
        out["class_"] = str(d["class"])
    return out


def _ws(text: str) -> list[float]:
    try:
        ws = [float(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"--w '{text}' is not a comma-separated list of numbers.", "Pass e.g. --w 0,2,7.5.") from None
    if not 1 <= len(ws) <= MAX_WS:
        raise ConfigError(f"--w has {len(ws)} values; the trajectory compares 1 to {MAX_WS}.", "Pass e.g. --w 0,7.5.")
    if any(w < 0 or w != w for w in ws):
        raise ConfigError(f"--w {text} has a negative or NaN value.", "The paper's w is >= 0 (0 = plain conditional).")
    return ws


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from torchvision.utils import make_grid

    from core.store.atomic import atomic_write_json
    from core.store.imageio import save_png
    from core.jobs.runners import TRAJECTORY, run_trajectory_of, save_trajectory
    from core.viz.denoise import signed_to_uint8

    for flag in ("run", "out"):
        if not getattr(args, flag):
            raise ConfigError(f"--{flag} is missing.", f"Pass --{flag}.")
    ws = _ws(args.w)
    if not 1 <= args.sample_steps <= MAX_STEPS:
        raise ConfigError(f"--sample-steps {args.sample_steps} is out of range.", f"Use 1 to {MAX_STEPS} sampler steps (25 is the default).")
    check_flag_ranges(argparse.Namespace(**{**vars(args), "w": ws}), {"--w": ("cfg_sample", "w"), "--seed": ("app", "seed")})
    check_out(args.out, args.overwrite)
    traj, ck, c = run_trajectory_of(args.run, args.class_, ws, seed=args.seed, sampler=args.sampler, steps=args.sample_steps,
                                    device=args.device, checkpoint=args.checkpoint)
    size = int(ck["image_size"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_trajectory(out / TRAJECTORY, traj)
    # a row per w: x̂₀ (Eq. 15 of Ho et al., the clean image the step predicts) at every step, then the sample
    tiles = torch.cat([traj["x0_hat"], traj["final"][:, None]], dim=1)  # (W, S + 1, C, H, W)
    grid = make_grid(torch.from_numpy(signed_to_uint8(tiles.flatten(0, 1).numpy())), nrow=tiles.shape[1], padding=1, pad_value=255)
    save_png(grid, out / "trajectory.png", upscale=max(1, 64 // size))
    atomic_write_json(out / "params.json", {"run": str(Path(args.run).resolve()), "checkpoint": args.checkpoint, "class": ck["classes"][c],
                                            "class_idx": c, "ws": ws, "guidance_scales": [1 + w for w in ws], "seed": args.seed,
                                            "sampler": args.sampler, "steps": int(len(traj["timesteps"]))})
    norms = ", ".join(f"w={w:g}: {float(traj['guidance_norm'][i].mean()):.3f}" for i, w in enumerate(ws))
    if args.json:
        import json

        print(json.dumps({"out": str(out), "class": ck["classes"][c], "seed": args.seed, "steps": int(len(traj["timesteps"])),
                          "guidance_norm": {f"{w:g}": float(traj["guidance_norm"][i].mean()) for i, w in enumerate(ws)}}))
        return 0
    print(f"wrote the trajectory of class {ck['classes'][c]} (seed {args.seed}, {len(traj['timesteps'])} steps) to {out}; "
          f"mean ‖ε̃ − ε(x,c)‖₂ per w: {norms}")
    return 0
