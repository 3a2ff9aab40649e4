"""The prepared GPU check of issue #11: one short script for a lent GPU, each part capped in time.

    .venv/bin/python bench/gpu_check.py --out "$OUT" [--data-dir ../shared/data/cifar10] [--total-s 540]

Parts (each a subprocess under its own time cap; after every part ``<out>/gpu_check.json`` is
rewritten, so a timeout or a crash keeps what was measured before it):

  1. ``cfg_small``: the `small` CFG preset on paper-profile CIFAR-10, bf16 autocast, batch 128:
     training steps/s and images/s of the real loop, FLOPs per step and the achieved fraction of a
     bf16 matmul peak measured in the same run (``bench/cfg_flops.py --device cuda``).
  2. ``resnet18``: ResNet18 (CIFAR stem) training images/s, batch 256, bf16, with the lab's
     on-device augmentation (``bench/data_pipeline.bench_resnet18``).
  3. ``paper_smoke``: ``python -m core experiment --study paper-smoke --device cuda`` unchanged;
     wall time, states and rows.

The card's name (``nvidia-smi``/torch) is recorded first. Afterwards, on the workstation:
``python bench/gpu_check.py --record FETCHED/gpu_check.json`` writes bench/results/gpu_check.json,
which BENCHMARKS.md shows as its own section (bench/templates/gpu_check_plan.md says what is
pending). Budget: the device tool gives 600 s per command, so the default caps sum to 540 s
(150 + 120 + 240, plus a few seconds of overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def resnet18_part(data_dir: str, batches: int, batch_size: int, device: str) -> dict:
    """Runs in its own process (see main): ResNet18 training images/s (bf16 autocast on cuda)."""
    sys.path.insert(0, str(ROOT))
    import torch

    from bench.data_pipeline import bench_resnet18

    try:
        from core.data.loading import DataConfig, load_dataset

        images = load_dataset(DataConfig(dataset="cifar10", data_dir=data_dir)).train.images
        source = f"CIFAR-10 at {data_dir}"
    except Exception as exc:  # the data did not travel: random images of the same shape cost the same
        images = torch.randint(0, 256, (batch_size * (batches + 1), 3, 32, 32), dtype=torch.uint8)
        source = f"random uint8 images (CIFAR-10 not loadable: {type(exc).__name__}: {str(exc)[:200]})"
    dev = torch.device(device)
    ips = bench_resnet18(images, batches, batch_size, dev)
    return {"images_per_s": ips, "batch_size": batch_size, "timed_batches": batches, "device": device,
            "dtype": "bfloat16 autocast" if dev.type == "cuda" else "float32", "data": source,
            "card": torch.cuda.get_device_name(0) if dev.type == "cuda" else "CPU"}


def record(path: str) -> int:
    """Turn a fetched ``gpu_check.json`` into bench/results/gpu_check.json (markdown with the card's name)."""
    sys.path.insert(0, str(ROOT))
    from bench.record import write_result

    rep = json.loads(Path(path).read_text())
    parts = rep["parts"]
    card = rep.get("nvidia_smi") or "?"
    lines = [f"Card: **{card}** (nvidia-smi), run {rep.get('started')}.", "", "| part | figure | state |", "|---|---|---|"]
    c = (parts.get("cfg_small") or {}).get("result") or {}
    if c:
        lines.append(f"| `small` CFG, CIFAR-10, bf16, batch {c['batch_size']} | {c['loop']['steps_per_s']:.2f} steps/s, "
                     f"{c['loop']['images_per_s']:.0f} images/s; {c['flops_per_step'] / 1e9:.0f} GFLOP/step = "
                     f"{c['achieved_fraction_loop']:.1%} of a {c['matmul_peak_flops_per_s'] / 1e12:.0f} TFLOP/s bf16 matmul peak "
                     f"measured in the same run | rc {parts['cfg_small']['rc']} |")
    r = (parts.get("resnet18") or {}).get("result") or {}
    if r:
        lines.append(f"| ResNet18 (CIFAR stem) training, batch {r['batch_size']}, {r['dtype']} | {r['images_per_s']:.0f} images/s "
                     f"({r['data']}) | rc {parts['resnet18']['rc']} |")
    sm = parts.get("paper_smoke") or {}
    if sm:
        res = sm.get("result") or {}
        lines.append(f"| `--preset paper-smoke --device cuda` | {sm['wall_s']:.0f} s wall; cells {res.get('cells')} | "
                     f"rc {sm['rc']}, state {res.get('state')} |")
    for name, e in parts.items():
        if e.get("rc") not in (0, None):
            lines.append(f"\n{name} did not finish (rc {e['rc']}): `{(e.get('stderr_tail') or '')[-300:]}`")
    out = write_result("gpu_check", rep, markdown="\n".join(lines), device="cuda", command="bench/gpu_check.py --out $OUT")
    print("\n".join(lines))
    print(out)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", str(ROOT / ".cache" / "bench" / "gpu_check")))
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--cfg-s", type=int, default=150)
    ap.add_argument("--resnet-s", type=int, default=120)
    ap.add_argument("--smoke-s", type=int, default=240)
    ap.add_argument("--device", default="cuda", help="cuda (the check); cpu only to test this script's plumbing")
    ap.add_argument("--only", default="cfg_small,resnet18,paper_smoke", help="comma-separated parts to run")
    ap.add_argument("--record", default=None, metavar="GPU_CHECK_JSON",
                    help="write a fetched gpu_check.json into bench/results/gpu_check.json (for BENCHMARKS.md) and stop")
    ap.add_argument("--_resnet18", action="store_true", help=argparse.SUPPRESS)  # the part's own process
    args = ap.parse_args()
    if args.record:
        return record(args.record)
    if args._resnet18:
        gpu = args.device.startswith("cuda")
        print(json.dumps(resnet18_part(args.data_dir, 40 if gpu else 2, 256 if gpu else 16, args.device)))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "parts": {}}
    dest = out / "gpu_check.json"

    def save() -> None:
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, dest)

    try:
        report["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                              capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as exc:
        report["nvidia_smi"] = f"unavailable: {exc}"
    save()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parts = {
        "cfg_small": ([PY, "bench/cfg_flops.py", "--device", args.device, "--preset", "small", "--dataset", "cifar10",
                       "--data-dir", args.data_dir, "--batch-size", "128", "--steps", "400", "--log-every", "50",
                       "--peak-s", "3", "--no-work-flops", "--name", "cfg_flops_gpu", "--out-dir", str(out)], args.cfg_s),
        "resnet18": ([PY, "bench/gpu_check.py", "--_resnet18", "--data-dir", args.data_dir, "--device", args.device], args.resnet_s),
        "paper_smoke": ([PY, "-m", "core", "experiment", "--study", "paper-smoke", "--data-dir", args.data_dir,
                         "--device", args.device, "--out", str(out / "paper_smoke"), "--json"], args.smoke_s),
    }
    for name in [p.strip() for p in args.only.split(",") if p.strip()]:
        argv, cap = parts[name]
        t0 = time.time()
        entry: dict = {"command": " ".join(argv), "cap_s": cap}
        try:
            r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=cap)
            entry.update(rc=r.returncode, stderr_tail=r.stderr[-3000:])
            last = next((ln for ln in reversed(r.stdout.splitlines()) if ln.startswith("{")), None)
            entry["result"] = json.loads(last) if last else None
        except subprocess.TimeoutExpired as exc:
            entry.update(rc="timeout", stderr_tail=(exc.stderr or b"")[-3000:].decode(errors="replace")
                         if isinstance(exc.stderr, bytes) else str(exc.stderr or "")[-3000:])
        entry["wall_s"] = round(time.time() - t0, 1)
        if name == "cfg_small" and (out / "cfg_flops_gpu.json").exists():
            entry["result"] = json.loads((out / "cfg_flops_gpu.json").read_text())["results"]
        report["parts"][name] = entry
        save()
        print(f"{name}: rc={entry['rc']} in {entry['wall_s']} s", flush=True)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
