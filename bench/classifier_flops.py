"""Benchmark: the quick study's classifier phase against the machine's limit, and batched training.

One process, one torch thread (one of the quick study's two CPU lanes), in one run:
  * FLOPs of one training step of the quick preset's classifier (`small` ResNet, digits 8x8, batch 64:
    forward + backward, counted by ``FlopCounterMode``; elementwise ops and SGD are not counted);
  * an fp32 matmul peak measured in the same process (bench.cfg_flops.matmul_peak), before and after;
  * the bare step (forward, backward, SGD on one fixed batch): its FLOP/s and fraction of the peak;
  * one classifier cell as the study runs it (its budget curve: runs of 63, 125, 250 and 500 steps on
    the seed-0 oversampled set, core.train.batched.train_runs), timed twice side by side: one run after
    the other (today's path) and the four as one batched computation (core.train.batched.train_batched);
  * where the apart cell's wall time goes: arithmetic (steps × bare step time) against the rest (data
    and augmentation, Python, evaluations, checkpoints and run files), plus the process start
    (``import torch, core.train.classifier`` in a fresh interpreter);
  * batched against apart per model-step at K = 1, 2, 4, 8 (the same bare step, vmapped);
  * the fp32 control behind tests/test_batched.py's fp64: a 1-ulp change of the initial weights, apart.

    flock /tmp/lab-heavy.lock /work/main/.venv/bin/python bench/classifier_flops.py
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.cfg_flops import count_flops, matmul_peak  # noqa: E402
from bench.record import write_result  # noqa: E402


def bare_step(k: int, batch: int, channels: int, size: int, classes: int):
    """One SGD step of k `small` models (k = 1: a plain module; k > 1: vmapped stacked state)."""
    from torch.func import functional_call, stack_module_state, vmap

    from core.nets.resnet import build_classifier

    ms = [build_classifier("small", classes, channels) for _ in range(k)]
    y = torch.randint(0, classes, (k, batch))
    if k == 1:
        m, x = ms[0], torch.randn(batch, channels, size, size)
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)

        def step():
            loss = F.cross_entropy(m(x), y[0])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step
    params, bufs = stack_module_state(ms)
    base = copy.deepcopy(ms[0]).to("meta")
    opt = torch.optim.SGD(list(params.values()), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(k, batch, channels, size, size)

    def step():
        out = vmap(lambda p, b, xi: functional_call(base, (p, b), (xi,)))(params, bufs, x)
        loss = F.cross_entropy(out.reshape(k * batch, -1), y.reshape(-1), reduction="sum") / batch
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def per_call_s(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def cell_jobs(root: Path, setup):
    from core.study.curves import curve_steps, scaled_warmup
    from core.train.batched import BatchJob
    from core.train.classifier import ClassifierConfig

    base, train, info = setup
    jobs = []
    for k in curve_steps(base.steps, 4):
        c = ClassifierConfig.from_dict({**base.to_dict(), "steps": k, "warmup_steps": scaled_warmup(base.warmup_steps, k, base.steps)})
        jobs.append(BatchJob(c, root / f"steps{k}", train, info))
    return jobs


def fp32_control(ds, train, steps: int = 50) -> dict:
    """Apart, fp32: the same run from weights changed by one ulp (×(1 + 2⁻²³)); the loss difference per step."""
    from core.train.augment import BatchAugment, channel_stats
    from core.nets.resnet import build_classifier

    mean, std = channel_stats(ds.train.images)
    aug = BatchAugment(mean, std, pad=1, flip=False)

    def run(eps: float):
        torch.manual_seed(0)
        m = build_classifier("small", 10, 1)
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(1 + eps)
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        g, out = torch.Generator().manual_seed(1), []
        for _ in range(steps):
            idx = torch.randint(0, len(train), (64,), generator=g)
            loss = F.cross_entropy(m(aug(train.images[idx], generator=g)), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(float(loss.detach()))
        return np.array(out)

    d = np.abs(run(0.0) - run(2.0 ** -23))
    return {"max_abs_loss_diff_50_steps": float(d.max()), "abs_loss_diff_steps_1_to_6": [float(v) for v in d[:6]]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    from core.generators.balance import balanced_train_set, train_set_info
    from core.data.loading import load_dataset
    from core.data.profiles import apply_profile
    from core.study.presets import preset
    from core.train.batched import train_batched, train_runs
    from core.train.classifier import ClassifierConfig

    q = preset("quick")
    data = q.data_for_seed(0)
    ds = load_dataset(data)
    imb = apply_profile(ds.train, data)
    train = balanced_train_set(imb, "oversample", seed=0)
    base = ClassifierConfig.from_dict({**q.classifier, "data": data.to_dict(), "arch": "small", "seed": 0, "device": "cpu"})
    batch, ch, size = base.batch_size, train.channels, train.image_size

    peak0 = matmul_peak(torch.device("cpu"), torch.float32, 2.0, 1024)["flops_per_s"]
    one = bare_step(1, batch, ch, size, 10)
    flops = count_flops(one)
    step_s = per_call_s(one, 40)
    per_k = {}
    for k in (1, 2, 4, 8):
        per_k[k] = per_call_s(bare_step(k, batch, ch, size, 10), max(5, 40 // k)) / k

    # one classifier cell (budget curve + main run), apart and batched, side by side
    work = Path(tempfile.mkdtemp(prefix="clf_flops_"))
    os.environ["IMBALANCE_LAB_BATCHED"] = "off"
    t0 = time.time()
    apart = train_runs(cell_jobs(work / "apart", (base, train, train_set_info("oversample"))), ds)
    apart_s = time.time() - t0
    t0 = time.time()
    batched = train_batched(cell_jobs(work / "batched", (base, train, train_set_info("oversample"))), ds)
    batched_s = time.time() - t0
    steps_cell = sum(r["steps"] for r in apart)
    peak1 = matmul_peak(torch.device("cpu"), torch.float32, 2.0, 1024)["flops_per_s"]
    peak = max(peak0, peak1)
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "import torch, core.train.classifier"], cwd=ROOT, check=True)
    start_s = time.time() - t0
    arith_s = steps_cell * step_s
    control = fp32_control(ds, train)
    res = {
        "threads": args.threads,
        "gflop_per_step": flops / 1e9,
        "peak_gflops": peak / 1e9, "peak_gflops_before": peak0 / 1e9, "peak_gflops_after": peak1 / 1e9,
        "bare_step_ms": step_s * 1e3, "bare_gflops": flops / step_s / 1e9, "bare_fraction_of_peak": flops / step_s / peak,
        "cell_steps": steps_cell, "cell_apart_s": apart_s, "cell_batched_s": batched_s, "batched_speedup": apart_s / batched_s,
        "cell_apart_gflops": flops * steps_cell / apart_s / 1e9, "cell_fraction_of_peak": flops * steps_cell / apart_s / peak,
        "cell_arithmetic_s": arith_s, "cell_outside_arithmetic_s": apart_s - arith_s, "cell_outside_share": (apart_s - arith_s) / apart_s,
        "process_start_s": start_s,
        "per_model_step_ms": {str(k): v * 1e3 for k, v in per_k.items()},
        "accuracy_apart": [r["accuracy"] for r in apart], "accuracy_batched": [r["accuracy"] for r in batched],
        "fp32_control": control, "load_before": load0, "load_after": os.getloadavg()[0],
    }
    rows = ["| K models | ms per model-step | vs K = 1 |", "|---|---|---|"]
    rows += [f"| {k} | {v * 1e3:.1f} | {per_k[1] / v:.2f}× |" for k, v in per_k.items()]
    md = "\n".join([
        f"| figure | value |", "|---|---|",
        f"| FLOPs per training step (small ResNet, 8×8, batch {batch}) | {flops / 1e9:.3f} GFLOP |",
        f"| fp32 matmul peak, {args.threads} thread (best of before/after) | {peak / 1e9:.1f} GFLOP/s |",
        f"| bare step (fwd + bwd + SGD) | {step_s * 1e3:.1f} ms = {flops / step_s / 1e9:.1f} GFLOP/s = **{flops / step_s / peak:.0%} of peak** |",
        f"| one classifier cell, apart (4 runs, {steps_cell} steps) | {apart_s:.1f} s = {flops * steps_cell / apart_s / 1e9:.1f} GFLOP/s = **{flops * steps_cell / apart_s / peak:.0%} of peak** |",
        f"| of which arithmetic (steps × bare step) / outside it | {arith_s:.1f} s / {apart_s - arith_s:.1f} s (**{(apart_s - arith_s) / apart_s:.0%}** outside: data, Python, evaluation, checkpoints, run files) |",
        f"| process start (`import torch, core.train.classifier`) | {start_s:.1f} s (once per lane worker) |",
        f"| the same cell batched (K = 4, short runs leave the batch) | {batched_s:.1f} s: **{apart_s / batched_s:.2f}×** the apart cell |",
        f"| load average before / after | {load0:.1f} / {os.getloadavg()[0]:.1f} |",
        "", *rows, "",
        f"fp32 control: the same run from weights changed by one ulp differs in loss by "
        f"{', '.join(f'{v:.1e}' for v in control['abs_loss_diff_steps_1_to_6'])} over its first 6 steps, "
        f"{control['max_abs_loss_diff_50_steps']:.1e} at most over 50.",
    ])
    print(md)
    if not args.no_write:
        print(write_result("classifier_flops", res, md, device="cpu"))


if __name__ == "__main__":
    main()
