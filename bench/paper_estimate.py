"""An ESTIMATE (not a measurement) of the paper preset's GPU-hours, from counted FLOPs.

Inputs: ``bench/results/cfg_flops.json`` (FLOPs per unit of work of every network the paper preset
trains or samples, counted by ``torch.utils.flop_counter`` in ``bench/cfg_flops.py``), the paper
preset's numbers (``core.study.presets.PRESETS["paper"]``: CIFAR-10 Table 1 counts, fill to 5,000 per
class, w ∈ {0.1, 7.5}, DPM-Solver++ 25 steps, `ddpm` CFG 100k steps at batch 128, ResNet18/50 for
100 epochs, 3 seeds), and a stated GPU: its dense bf16 peak and an assumed achieved fraction. Every
cell's time is its FLOPs / (peak × fraction). Stable Diffusion cells are left out (their cost is the
SD pipeline's, not counted here).

How it falls with N GPUs: the study's cells (CFG training per seed -> one fill per w and seed ->
classifiers per method × ResNet × seed; the non-generative methods need no generator) are list-
scheduled on N lanes in dependency order, as ``core.study.executors.LocalExecutor`` schedules them; with
``--cfg-gpus k`` the CFG training takes k lanes at once (Accelerate DDP; its k-way efficiency is
``--ddp-eff``).

    .venv/bin/python bench/paper_estimate.py [--peak-tflops 989 --fraction 0.10 --gpu "NVIDIA H200"]
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.record import RESULTS, write_result  # noqa: E402

COUNTS = [500 * (i + 1) for i in range(10)]  # the paper's Table 1
TARGET, WS, SEEDS, EPOCHS, CFG_STEPS, SAMPLER_STEPS = 5000, (0.1, 7.5), 3, 100, 100_000, 25
METHODS = ["none", "oversample", "mixup", "cutmix"] + [f"cfg@w={w:g}" for w in WS]
ARCHS = ("resnet18", "resnet50")
TEST_IMAGES = 10_000


def cells(work: dict, rate: float, budget: str = "steps") -> list[dict]:
    """The paper study's cells with their seconds at `rate` FLOP/s. Budget "steps" (the lab's default):
    every classifier sees as many images as the largest set in 100 epochs; "epochs": its own set's."""
    fill = sum(TARGET - c for c in COUNTS)  # 22,500 generated images per w and seed
    real = sum(COUNTS)  # 27,500
    out = []
    for s in range(SEEDS):
        out.append({"id": f"cfg-train s{s}", "kind": "cfg-train", "deps": [],
                    "flops": work["cfg_ddpm_train_step_b128"] * CFG_STEPS})
        for w in WS:
            out.append({"id": f"fill w{w:g} s{s}", "kind": "fill", "deps": [f"cfg-train s{s}"],
                        "flops": work["cfg_ddpm_sample_step_per_image"] * SAMPLER_STEPS * fill})
        for m in METHODS:
            n = real if (m == "none" and budget == "epochs") else real + fill
            for a in ARCHS:
                dep = [f"fill w{m.split('=')[1]} s{s}"] if m.startswith("cfg") else []
                out.append({"id": f"{m} {a} s{s}", "kind": "classifier", "deps": dep,
                            "flops": work[f"{a}_train_per_image"] * n * EPOCHS + work[f"{a}_eval_per_image"] * TEST_IMAGES})
    for c in out:
        c["s"] = c["flops"] / rate
    return out


def schedule(cs: list[dict], n: int, cfg_gpus: int = 1, ddp_eff: float = 0.9) -> float:
    """Makespan (s) of greedy list scheduling on n lanes, cells taken in their listed (dependency) order."""
    done: dict[str, float] = {}
    pending = list(cs)
    t = 0.0
    running: list[tuple[float, str, list[int]]] = []
    busy: set[int] = set()
    while pending or running:
        progressed = True
        while progressed:
            progressed = False
            for c in list(pending):
                if not all(d in done for d in c["deps"]):
                    continue
                k = min(cfg_gpus, n) if c["kind"] == "cfg-train" else 1
                idle = [i for i in range(n) if i not in busy]
                if len(idle) < k:
                    break  # hold back later cells so the lanes drain for this one (as LocalExecutor does)
                take = idle[:k]
                dur = c["s"] / (k * (ddp_eff if k > 1 else 1.0))
                busy.update(take)
                heapq.heappush(running, (t + dur, c["id"], take))
                pending.remove(c)
                progressed = True
                break
        end, cid, take = heapq.heappop(running)
        t = end
        done[cid] = end
        busy.difference_update(take)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", default="NVIDIA H200 (stated dense bf16 peak, not measured)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU, TFLOP/s")
    ap.add_argument("--fraction", type=float, default=0.10, help="assumed achieved fraction of that peak")
    ap.add_argument("--ddp-eff", type=float, default=0.9, help="per-GPU efficiency of a CFG training spread over k GPUs")
    ap.add_argument("--budget", choices=["steps", "epochs"], default="steps", help="the study's classifier budget (the paper preset: steps)")
    ap.add_argument("--flops", default=str(RESULTS / "cfg_flops.json"), help="the cfg_flops results file")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    src = json.loads(Path(args.flops).read_text())
    work = src["results"]["work_flops"]
    rate = args.peak_tflops * 1e12 * args.fraction
    cs = cells(work, rate, args.budget)
    by_kind = {}
    for c in cs:
        by_kind[c["kind"]] = by_kind.get(c["kind"], 0.0) + c["s"]
    total = sum(by_kind.values())
    rows = []
    for n, k in [(1, 1), (2, 1), (4, 1), (8, 1), (8, 2), (16, 1), (16, 4)]:
        rows.append({"gpus": n, "cfg_gpus": k, "hours": schedule(cs, n, k, args.ddp_eff) / 3600})
    crit = max(c["s"] for c in cs if c["kind"] == "cfg-train") + max(c["s"] for c in cs if c["kind"] == "fill") + \
        max(c["s"] for c in cs if c["kind"] == "classifier")
    res = {"gpu": args.gpu, "peak_tflops": args.peak_tflops, "fraction": args.fraction, "effective_tflops": rate / 1e12,
           "flops_total": sum(c["flops"] for c in cs), "gpu_hours": total / 3600,
           "gpu_hours_by_kind": {k: v / 3600 for k, v in by_kind.items()}, "cells": len(cs),
           "critical_path_hours": crit / 3600, "wall_hours": rows, "source": "bench/results/cfg_flops.json work_flops",
           "sensitivity_gpu_hours": {f: total * args.fraction / f / 3600 for f in (0.05, 0.1, 0.2)}}
    md = [f"**Estimate, not a measurement.** GPU: {args.gpu}, {args.peak_tflops:g} TFLOP/s dense bf16, assumed "
          f"{args.fraction:.0%} achieved ({rate / 1e12:.0f} TFLOP/s). Work: {res['flops_total'] / 1e18:.2f} EFLOP in "
          f"{len(cs)} cells (SD cells left out), classifier budget \"{args.budget}\".", "",
          "| part | GPU-hours |", "|---|---|"]
    md += [f"| {k} ({sum(1 for c in cs if c['kind'] == k)} cells) | {v / 3600:.1f} |" for k, v in by_kind.items()]
    md += [f"| **total on one GPU** | **{total / 3600:.1f}** (at 5 % / 10 % / 20 % of peak: "
           + " / ".join(f"{h:.1f}" for h in res["sensitivity_gpu_hours"].values()) + ") |", "",
           "| GPUs | CFG training spread over | wall-clock hours (cells list-scheduled) |", "|---|---|---|"]
    md += [f"| {r['gpus']} | {r['cfg_gpus']} GPU{'s' if r['cfg_gpus'] > 1 else ''} | {r['hours']:.1f} |" for r in rows]
    md += ["", f"Critical path of one seed (CFG training -> fill -> ResNet50 on one GPU each): {crit / 3600:.1f} h; "
           "past 3 GPUs (one per seed's CFG training) only spreading the CFG training over several GPUs shortens it."]
    text = "\n".join(md)
    print(text)
    if not args.no_write:
        print(write_result("paper_estimate", res, markdown=text, command="python bench/paper_estimate.py"))


if __name__ == "__main__":
    main()
