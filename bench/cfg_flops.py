"""Benchmark: the CFG training step against the machine's limit.

In one run, on one device:
  * FLOPs of one training step (forward + backward of the ε-prediction loss, Eq. 7) counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (it counts matmuls/convolutions/attention as
    2·multiply-adds; elementwise ops, the optimizer and EMA are not counted);
  * a matmul peak measured here (fp32 on CPU, bf16 on a GPU), best of several timed square products;
  * steps/s of the real training loop (``core.train.cfg_unet.train_cfg``: data draw, noise, forward,
    backward, AdamW, EMA, logging) for a fixed number of steps, taken from its log rows after a
    warm-up window, plus the bare forward+backward rate;
  * the achieved fraction of the peak, and the steps/s the peak alone would allow;
  * FLOPs per unit of work for the other networks of the paper preset (for the GPU-hour estimate
    in the README): `small`/`ddpm` CFG steps at 32 px, one CFG sampling step per image
    (cond+uncond), ResNet18/50 (CIFAR stem) training per image.

    flock /tmp/bench.lock .venv/bin/python bench/cfg_flops.py            # tiny on digits, CPU
    .venv/bin/python bench/cfg_flops.py --device cuda --preset small --dataset cifar10 \
        --data-dir ../shared/data/cifar10 --batch-size 128 --name cfg_flops_gpu   # on a GPU, bf16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench.record import write_result  # noqa: E402
from core.callbacks import Callbacks  # noqa: E402
from core.data.loading import DataConfig  # noqa: E402
from core.nets.unet import build_unet  # noqa: E402


def count_flops(fn) -> int:
    """FLOPs of fn() as FlopCounterMode counts them (2 per multiply-add)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def unet_step_fn(model, batch: int, channels: int, size: int, num_classes: int, device, dtype=None):
    """One forward+backward of the training loss on random data (the shapes are what matter for FLOPs)."""
    x = torch.randn(batch, channels, size, size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    y = torch.randint(0, num_classes + 1, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            pred = model(x, t, class_labels=y).sample
        F.mse_loss(pred.float(), x).backward()

    return step


def unet_forward_fn(model, batch: int, channels: int, size: int, num_classes: int, device):
    x = torch.randn(batch, channels, size, size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    y = torch.randint(0, num_classes + 1, (batch,), device=device)

    def fwd():
        with torch.no_grad():
            model(x, t, class_labels=y)

    return fwd


def matmul_peak(device, dtype, seconds: float, n: int) -> dict:
    """Best FLOP/s of n×n @ n×n products (2n³ FLOPs each) over about `seconds` of repeats."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best, t_end, reps = 0.0, time.time() + seconds, 0
    while time.time() < t_end or reps < 3:
        k = 4 if device.type == "cpu" else 50
        t0 = time.perf_counter()
        for _ in range(k):
            a @ b
        sync()
        dt = time.perf_counter() - t0
        best = max(best, 2 * n**3 * k / dt)
        reps += 1
    return {"flops_per_s": best, "n": n, "dtype": str(dtype).replace("torch.", ""), "timed_batches": reps}


def timed_rate(fn, device, seconds: float) -> float:
    """Calls of fn per second over about `seconds`, after one warm-up call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    sync()
    return n / (time.perf_counter() - t0)


def loop_rate(preset: str, data: DataConfig, batch: int, steps: int, device: str, log_every: int) -> dict:
    """steps/s of the real training loop: rows after the first log window, so start-up is excluded."""
    from core.train.cfg_unet import CFGTrainConfig, train_cfg

    rows: list[tuple[float, dict]] = []
    run_dir = Path(tempfile.mkdtemp(prefix="cfg_flops_"))
    try:
        cfg = CFGTrainConfig(data=data, preset=preset, steps=steps, batch_size=batch, lr=1e-3, warmup_steps=100,
                             log_every=log_every, checkpoint_every=0, preview_every=0, device=device)
        t0 = time.time()
        train_cfg(cfg, run_dir / "run", Callbacks(on_metrics=lambda r: rows.append((time.time(), r))))
        total = time.time() - t0
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    (ta, ra), (tb, rb) = rows[0], rows[-1]
    steady = (rb["step"] - ra["step"]) / (tb - ta)
    return {"steps": steps, "call_s": total, "steps_per_s": steady, "images_per_s": steady * batch,
            "window": [ra["step"], rb["step"]], "final_loss": rb["loss"]}


def work_flops(device) -> dict:
    """FLOPs per unit of work of the paper preset's networks (counted on the device given, batch 8 then scaled)."""
    from core.nets.resnet import build_classifier

    out = {}
    for preset, batch in (("small", 128), ("ddpm", 128)):
        m = build_unet(preset, 10, 3, 32).to(device)
        per8 = count_flops(unet_step_fn(m, 8, 3, 32, 10, device))
        out[f"cfg_{preset}_train_step_b{batch}"] = per8 * batch // 8
        # one sampler step for one image: a batched [x; x] forward with [c; ∅] (2 images' worth)
        out[f"cfg_{preset}_sample_step_per_image"] = count_flops(unet_forward_fn(m, 8, 3, 32, 10, device)) * 2 // 8
        out[f"cfg_{preset}_params"] = sum(p.numel() for p in m.parameters())
    for arch in ("resnet18", "resnet50"):
        m = build_classifier(arch, 10, 3, cifar_stem=True).to(device)
        x = torch.randn(8, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (8,), device=device)
        out[f"{arch}_train_per_image"] = count_flops(lambda: F.cross_entropy(m(x), y).backward()) // 8

        def fwd():
            with torch.no_grad():
                m(x)

        out[f"{arch}_eval_per_image"] = count_flops(fwd) // 8
    return out


def log(msg: str) -> None:
    print(f"[cfg_flops {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200, help="steps of the real training loop to time")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--peak-s", type=float, default=4.0, help="seconds of matmul timing for the peak")
    ap.add_argument("--matmul-n", type=int, default=None, help="matmul size (default 2048 on CPU, 8192 on a GPU)")
    ap.add_argument("--name", default="cfg_flops", help="results file bench/results/<name>.json")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, i.e. every core)")
    ap.add_argument("--no-work-flops", action="store_true", help="skip the FLOP table of the paper preset's networks")
    ap.add_argument("--out-dir", default=None, help="write <name>.json here instead of bench/results (e.g. $OUT on a lent GPU)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    load0 = os.getloadavg()
    t_all = time.time()

    data = DataConfig(dataset=args.dataset, profile="paper", data_dir=args.data_dir) if args.data_dir else \
        DataConfig(dataset=args.dataset, profile="paper")
    from core.data.loading import load_dataset

    train = load_dataset(data).train
    C, ch, size = train.num_classes, train.images.shape[1], train.images.shape[-1]
    model = build_unet(args.preset, C, ch, size).to(device)
    params = sum(p.numel() for p in model.parameters())
    step = unet_step_fn(model, args.batch_size, ch, size, C, device, dtype=torch.bfloat16 if gpu else None)
    flops_step = count_flops(step)
    log(f"{flops_step / 1e9:.2f} GFLOP per step; measuring the matmul peak")
    model.zero_grad(set_to_none=True)
    peak = matmul_peak(device, torch.bfloat16 if gpu else torch.float32, args.peak_s, args.matmul_n or (8192 if gpu else 2048))
    log(f"peak {peak['flops_per_s'] / 1e9:.0f} GFLOP/s; timing forward+backward")
    fwd_bwd_per_s = timed_rate(step, device, 8.0 if not gpu else 5.0)
    log(f"{fwd_bwd_per_s:.2f} fwd+bwd/s; timing the training loop for {args.steps} steps")
    loop = loop_rate(args.preset, data, args.batch_size, args.steps, args.device, args.log_every)
    log(f"loop {loop['steps_per_s']:.2f} steps/s; peak again, then the FLOP table")
    peak2 = matmul_peak(device, torch.bfloat16 if gpu else torch.float32, args.peak_s, args.matmul_n or (8192 if gpu else 2048))
    peak_fs = max(peak["flops_per_s"], peak2["flops_per_s"])
    res = {
        "preset": args.preset, "dataset": args.dataset, "image": [ch, size, size], "batch_size": args.batch_size,
        "params": params, "flops_per_step": flops_step,
        "matmul_peak_flops_per_s": peak_fs, "matmul": {**peak, "before": peak["flops_per_s"], "after": peak2["flops_per_s"]},
        "peak_implied_steps_per_s": peak_fs / flops_step,
        "fwd_bwd_steps_per_s": fwd_bwd_per_s,
        "loop": loop,
        "achieved_fraction_loop": loop["steps_per_s"] * flops_step / peak_fs,
        "achieved_fraction_fwd_bwd": fwd_bwd_per_s * flops_step / peak_fs,
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        "work_flops": {} if args.no_work_flops else work_flops(device),
        "wall_s": time.time() - t_all,
    }
    if gpu:
        res["gpu"] = torch.cuda.get_device_name(0)
    g = 1e9
    md = "\n".join([
        "| quantity | value |", "|---|---|",
        f"| model | `{args.preset}` UNet, {params / 1e6:.2f} M parameters, {ch}×{size}×{size} images, batch {args.batch_size} |",
        f"| FLOPs per training step (FlopCounterMode, forward + backward) | {flops_step / g:.2f} GFLOP |",
        f"| matmul peak here ({peak['dtype']}, {peak['n']}×{peak['n']}, best before/after the loop) | "
        f"{peak['flops_per_s'] / g:.0f} / {peak2['flops_per_s'] / g:.0f} GFLOP/s |",
        f"| steps/s the peak allows | {res['peak_implied_steps_per_s']:.2f} |",
        f"| bare forward+backward | {fwd_bwd_per_s:.2f} steps/s ({res['achieved_fraction_fwd_bwd']:.0%} of peak) |",
        f"| training loop (`train_cfg`, {args.steps} steps, steady state over steps {loop['window'][0]}–{loop['window'][1]}) | "
        f"**{loop['steps_per_s']:.2f} steps/s**, {loop['images_per_s']:.0f} images/s ({res['achieved_fraction_loop']:.0%} of peak) |",
        f"| implied steps in a 300 s budget | {loop['steps_per_s'] * 300:.0f} |",
        f"| torch threads; load average before → after (1 min) | {res['torch_threads']}; {load0[0]:.2f} → {res['loadavg_after'][0]:.2f} |",
    ])
    w = res["work_flops"]
    md += "" if not w else "\n\nFLOPs per unit of work of the paper preset's networks (counted, not timed; 32×32×3, 10 classes):\n\n" + "\n".join([
        "| work | GFLOP |", "|---|---|",
        f"| `small` CFG training step, batch 128 ({w['cfg_small_params'] / 1e6:.1f} M params) | {w['cfg_small_train_step_b128'] / g:.1f} |",
        f"| `ddpm` CFG training step, batch 128 ({w['cfg_ddpm_params'] / 1e6:.1f} M params) | {w['cfg_ddpm_train_step_b128'] / g:.1f} |",
        f"| `small` sampler step per image (cond + uncond) | {w['cfg_small_sample_step_per_image'] / g:.3f} |",
        f"| `ddpm` sampler step per image (cond + uncond) | {w['cfg_ddpm_sample_step_per_image'] / g:.3f} |",
        f"| ResNet18 (CIFAR stem) training, per image | {w['resnet18_train_per_image'] / g:.3f} |",
        f"| ResNet50 (CIFAR stem) training, per image | {w['resnet50_train_per_image'] / g:.3f} |",
        f"| ResNet18 / ResNet50 evaluation, per image | {w['resnet18_eval_per_image'] / g:.3f} / {w['resnet50_eval_per_image'] / g:.3f} |",
    ])
    print(md)
    print(json.dumps({k: v for k, v in res.items() if k != "work_flops"}, default=float))
    if not args.no_write:
        print(write_result(args.name, res, markdown=md, device=str(device), out_dir=args.out_dir))


if __name__ == "__main__":
    main()
