"""GPU benchmark: train the `small` CFG preset on paper-profile CIFAR-10 for a fixed wall budget.

Self-contained: trains through core.train.cfg_unet (bf16 autocast + channels_last on CUDA),
then reports training steps/s, sampling images/s (DPM-Solver++ 25, batched cond/uncond)
and class-consistency from the CIFAR-10 judge, and saves a sample grid (rows = classes).

    .venv/bin/python bench/gpu_cfg_cifar.py --budget-s 360 --out $OUT          # on a lent GPU
    .venv/bin/python bench/gpu_cfg_cifar.py --device cpu --steps 10 --out /tmp/x  # CPU smoke check

Prints one JSON object (card name included), writes <out>/gpu_cfg_cifar.json + grid PNGs, and (with
--record, for a real run) bench/results/gpu_cfg_cifar.json through bench/record.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=360, help="training wall-clock budget, seconds")
    ap.add_argument("--steps", type=int, default=200_000, help="step cap (the budget usually ends training first)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--device", default=None, help="default: cuda if available")
    ap.add_argument("--n-sample", type=int, default=1000, help="images for the sampling-speed and consistency measurement")
    ap.add_argument("--no-judge", action="store_true", help="skip class-consistency (the CIFAR judge trains once, ~1 min on a GPU)")
    ap.add_argument("--out", default=str(ROOT / ".cache" / "bench" / "gpu_cfg_cifar"))
    ap.add_argument("--record", action="store_true", help="also write bench/results/gpu_cfg_cifar.json (not for smoke checks)")
    args = ap.parse_args()

    from torchvision.utils import make_grid

    from core.callbacks import Callbacks
    from core.data.loading import DataConfig
    from core.generators.cfg import CFGGenerator
    from core.settings.device import resolve_device
    from core.store.imageio import save_png
    from core.train.cfg_unet import CFGTrainConfig, train_cfg

    device = resolve_device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    data = DataConfig(dataset="cifar10", data_dir=args.data_dir, profile="paper")
    cfg = CFGTrainConfig(data=data, preset=args.preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=min(500, args.steps // 10),
                         log_every=max(1, min(100, args.steps)), checkpoint_every=0, preview_every=0, preview_per_class=8,
                         max_seconds=args.budget_s, device=str(device))
    t_load = time.time()
    from core.data.loading import prepare

    prepare(data)  # decode/cache the dataset outside the training budget
    load_s = time.time() - t_load
    first = {}

    def on_metrics(row):
        first.setdefault("t", time.time())
        print(json.dumps(row), flush=True)

    t0 = time.time()
    train_cfg(cfg, run_dir, Callbacks(on_metrics=on_metrics))
    train_s = time.time() - t0
    status = json.loads((run_dir / "status.json").read_text())
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = status["step"]

    res = {"card": card, "device": str(device), "preset": args.preset, "batch_size": args.batch_size, "budget_s": args.budget_s,
           "data_load_s": round(load_s, 1), "train_call_s": round(train_s, 1), "steps": steps,
           # from the logged windows: training steps only (the call also makes the final preview and checkpoint)
           "steps_per_s": sum(r["images_per_s"] for r in metrics) / max(1, len(metrics)) / args.batch_size if metrics else None,
           "train_images_per_s_last": metrics[-1]["images_per_s"] if metrics else None, "final_loss": metrics[-1]["loss"] if metrics else None}

    labels = torch.arange(10).repeat_interleave(max(1, args.n_sample // 10))
    for w in (0.1, 7.5):  # the paper's two guidance strengths
        gen = CFGGenerator(run_dir, w=w, sampler="dpm", steps=25, batch_size=500, device=str(device))
        seeds = list(range(len(labels)))
        gen.sample_batch(labels[:20], seeds[:20])  # warm-up (kernels, autotune)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.time()
        imgs = torch.cat([gen.sample_batch(labels[i : i + 500], seeds[i : i + 500]) for i in range(0, len(labels), 500)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        res[f"sample_images_per_s_w{w:g}"] = len(labels) / (time.time() - t)
        grid = make_grid(imgs.view(10, -1, *imgs.shape[1:])[:, :10].flatten(0, 1), nrow=min(10, len(labels) // 10), padding=1, pad_value=255)
        res[f"grid_w{w:g}"] = str(save_png(grid, out / f"cfg_cifar_grid_w{w:g}.png", upscale=2))
        if not args.no_judge:
            from core.metrics.judge import class_consistency, get_judge

            judge = get_judge(data, device=str(device))
            res[f"consistency_w{w:g}"] = class_consistency(judge, imgs, labels)
            res["judge_test_accuracy"] = judge.info.get("test_accuracy")
    (out / "gpu_cfg_cifar.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    if args.record:
        from bench.record import write_result

        print(f"wrote {write_result('gpu_cfg_cifar', res, device=str(device))}")


if __name__ == "__main__":
    main()
