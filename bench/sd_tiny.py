"""Throughput of the SD generator on the randomly initialised miniature pipeline.

    flock /tmp/lab-cpu.lock .venv/bin/python bench/sd_tiny.py [--device cpu|cuda] [--write]

Real weights cannot be fetched in the lab's workplace (no internet), so this measures the
lab's own overhead around a diffusers pipeline (prompt encoding, per-image generators,
scheduler, VAE decode, antialiased resize, uint8 conversion) on a ~1 MB model, plus the
512 -> 32 resize on its own, which is the part that carries over to real SD 1.5 unchanged.
It is not an estimate of real SD speed. ``--write`` writes bench/results/sd_tiny.json
(bench/record.py); its prose is bench/templates/sd_tiny.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")

import torch  # noqa: E402

from bench.record import write_result  # noqa: E402
from core.generators import sd  # noqa: E402


def timed_generate(g: sd.SDGenerator, n: int, repeats: int = 2) -> float:
    """Best images/s over ``repeats`` runs of n images (first run = warm-up, not counted)."""
    g.generate(0, min(n, g.batch_size), seed=99)
    best = 0.0
    for r in range(repeats):
        t0 = time.perf_counter()
        g.generate(r % len(g.classes), n, seed=r)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=32, help="images per timed run")
    ap.add_argument("--write", action="store_true", help="write bench/results/sd_tiny.json")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = sd.build_tiny_pipeline(Path(tmp) / "tiny-sd")
        t0 = time.perf_counter()
        sd.load_pipeline(str(folder), device=args.device)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sd.load_pipeline(str(folder), device=args.device)
        cached_s = time.perf_counter() - t0
        threads = [1, 2] if args.device == "cpu" else [torch.get_num_threads()]
        settings = [
            ("paper settings: 25 steps DPM++, w=6.5 (CFG on)", dict(steps=25, w=6.5, scheduler="dpm++")),
            ("fast-model settings: 1 step, w=0 (CFG off)", dict(steps=1, w=0.0, scheduler="model")),
        ]
        for nt in threads:
            torch.set_num_threads(nt)
            for label, kw in settings:
                for bs in (1, 8):
                    g = sd.SDGenerator(["cat", "dog"], 3, 32, model=str(folder), batch_size=bs, device=args.device, **kw)
                    rate = timed_generate(g, args.n)
                    rows.append({"threads": nt, "settings": label, "batch_size": bs, "images_per_s": round(rate, 2)})
                    print(json.dumps(rows[-1]), flush=True)
        # the resize that real 512 px output goes through (antialiased bicubic, 512 -> 32)
        torch.set_num_threads(threads[-1])
        x = torch.rand(8, 3, 512, 512, device=args.device)
        sd.to_dataset_images(x, 32, 3)
        t0 = time.perf_counter()
        for _ in range(5):
            sd.to_dataset_images(x, 32, 3)
        resize_rate = 40 / (time.perf_counter() - t0)

    result = {"device": args.device, "load_s": round(load_s, 2), "cached_load_s": round(cached_s, 5), "resize_512_to_32_images_per_s": round(resize_rate, 1), "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.write:
        print(f"wrote {write_result('sd_tiny', result, markdown=markdown(result), device=args.device)}")
    return 0


def markdown(result: dict) -> str:
    """The table and the load/resize figures; the model description is in bench/templates/sd_tiny.md."""
    lines = ["| torch threads | settings | batch size | images/s |", "|---:|---|---:|---:|"]
    lines += [f"| {r['threads']} | {r['settings']} | {r['batch_size']} | {r['images_per_s']} |" for r in result["rows"]]
    lines += [
        "",
        f"- Loading the folder the first time: {result['load_s']} s; a second `load_pipeline` call (process cache hit): {result['cached_load_s'] * 1000:.2f} ms.",
        f"- Antialiased bicubic resize 512 -> 32 with uint8 conversion, batches of 8: {result['resize_512_to_32_images_per_s']} images/s "
        "(this step is the same for real SD 1.5 output).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
