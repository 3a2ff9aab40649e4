"""Runs the quick study preset (digits, exponential profile ratio 50, small ResNet, 2 seeds)
and writes its table to bench/results/quick_study.json (bench/record.py) as measured.

    flock /tmp/lab-cpu.lock .venv/bin/python bench/quick_study.py [--out bench/out/quick] [--resume]

The preset is not tuned to favour any method; the figures are what this run measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.record import write_result  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "quick"), help="study folder (git-ignored)")
    p.add_argument("--resume", action="store_true", help="continue the study in --out instead of starting fresh")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    from core.callbacks import Callbacks
    from core.commands.experiment import render_table
    from core.experiment import load_results, preset, run_study

    out = Path(args.out)
    if out.exists() and not args.resume:
        shutil.rmtree(out)
    cfg = preset("quick")
    t0 = time.time()
    marks: list[tuple[float, str]] = []

    def progress(done, total, msg=""):
        if not marks or marks[-1][1].split(":")[0] != msg.split(":")[0]:
            marks.append((time.time() - t0, msg))
            print(f"[{time.time() - t0:6.0f} s] [{done}/{total}] {msg}", flush=True)

    run_study(cfg, out, Callbacks(on_progress=progress))
    wall = time.time() - t0
    res = load_results(out)
    table = render_table(res["rows"])
    print(table)
    print(f"wall time {wall:.0f} s")
    if args.no_write:
        return 0
    notes = "\n".join(f"- {n}" for n in res["notes"]) or "- (none)"
    cfg_status = {}
    for seed in cfg.seeds:
        st = json.loads((out / "cfg" / f"seed{seed}" / "status.json").read_text()) if (out / "cfg" / f"seed{seed}" / "status.json").exists() else {}
        cfg_status[seed] = st.get("state", "not run")
    fid = any(r.get("fid") for r in res["rows"])
    gen_note = ("The generation metric is FID on Inception-v3 (torch-fidelity weights)." if fid else
                'The generation metric is the Fréchet distance on the judge CNN\'s features ("FD (judge CNN features)"), not FID: no Inception-v3 weights were available offline.')
    body = f"""Study: digits (16x16 grayscale, 10 classes), exponential profile ratio 50, small ResNet ({cfg.classifier['epochs']} epochs, batch {cfg.classifier['batch_size']}, SGD Nesterov lr {cfg.classifier['lr']}), seeds {cfg.seeds}, every class filled to the largest; CFG: tiny UNet, {cfg.cfg_train['steps']} steps per seed, {cfg.cfg_sample['sampler']} sampler {cfg.cfg_sample['steps']} steps. Mean ± std (ddof 1) over seeds; accuracy and F1 in %, on the balanced test split (360 images).
**Wall time: {wall / 60:.1f} min** (target ≤ 10 min on 2 cores{': met' if wall <= 600 else ': MISSED'}). CFG model state per seed: {cfg_status}.

{table}

Notes:
{notes}

Every classifier trains the same number of epochs, so `none` (the imbalanced set alone) gets fewer optimizer steps than the filled sets.
{gen_note} `n_images` is the size of the evaluated set (imbalanced + generated); the reference is the full digits train split. KID is computed on the same features (subset size in `results.json`)."""
    print(f"wrote {write_result('quick_study', {'minutes': wall / 60, 'rows': res['rows']}, markdown=body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
