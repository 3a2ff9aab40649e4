"""Throughput of the SD generator on the randomly initialised miniature pipeline.

    flock /tmp/lab-cpu.lock .venv/bin/python bench/sd_tiny.py [--device cpu|cuda] [--write]

Real weights cannot be fetched in the lab's workplace (no internet), so this measures the
lab's own overhead around a diffusers pipeline (prompt encoding, per-image generators,
scheduler, VAE decode, antialiased resize, uint8 conversion) on a ~1 MB model, plus the
512 -> 32 resize on its own, which is the part that carries over to real SD 1.5 unchanged.
It is not an estimate of real SD speed. ``--write`` replaces the "tiny pipeline" section of
bench/results/sd.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")

import torch  # noqa: E402

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
    ap.add_argument("--write", action="store_true", help="write bench/results/sd.md")
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
        write_markdown(result)
    return 0


def write_markdown(result: dict) -> None:
    path = ROOT / "bench" / "results" / "sd.md"
    machine = "2-core CPU, no GPU" if result["device"] == "cpu" else result["device"]
    lines = [
        "## Stable Diffusion generator: miniature pipeline throughput",
        "",
        f"Command: `flock /tmp/lab-cpu.lock .venv/bin/python bench/sd_tiny.py --write` · machine: {machine} "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__} · date: {date.today().isoformat()}",
        "",
        "Model: the randomly initialised miniature SD pipeline (`core.generators.sd.build_tiny_pipeline`: UNet 16/32 channels, "
        "2-layer CLIP text encoder, 2-block VAE, ~1 MB, native 32 px) saved to a temp folder and loaded back through the "
        "user's local-folder path. It makes noise; the numbers measure the lab's generation loop around a diffusers pipeline, "
        "**not** real SD speed. Output 32x32x3 uint8 per image; best of 2 timed runs of 32 images after a warm-up.",
        "",
        "| torch threads | settings | batch size | images/s |",
        "|---:|---|---:|---:|",
    ]
    lines += [f"| {r['threads']} | {r['settings']} | {r['batch_size']} | {r['images_per_s']} |" for r in result["rows"]]
    lines += [
        "",
        f"- Loading the folder the first time: {result['load_s']} s; a second `load_pipeline` call (process cache hit): {result['cached_load_s'] * 1000:.2f} ms.",
        f"- Antialiased bicubic resize 512 -> 32 with uint8 conversion, batches of 8: {result['resize_512_to_32_images_per_s']} images/s "
        "(this step is the same for real SD 1.5 output).",
        "",
    ]
    text = path.read_text() if path.exists() else ""
    marker = "## Stable Diffusion generator: miniature pipeline throughput"
    if marker in text:  # replace our section, keep anything else in the file
        head, _, rest = text.partition(marker)
        nxt = rest.find("\n## ")
        text = head + "\n".join(lines) + (rest[nxt:] if nxt >= 0 else "")
    else:
        text = text + ("\n" if text else "") + "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
