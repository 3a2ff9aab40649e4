"""Benchmark: our CFG generator vs lucidrains' denoising-diffusion-pytorch (classifier_free_guidance).

Both train on the same paper-profile digits split for the same wall-clock budget on this
machine, then sample the same number of images per class and w, scored by the same judge.
The peer runs as its README shows (Unet dim 64, dim_mults 1,2,4,8, cond_drop_prob 0.5;
GaussianDiffusion with 25 DDIM sampling steps; Adam lr 1e-4 as its Trainer's default);
its guidance argument ``cond_scale`` is diffusers' guidance_scale, i.e. 1 + w.

    pip install -r requirements-bench.txt
    flock /tmp/lab-cpu.lock .venv/bin/python bench/cfg_vs_peer.py
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the peer's sampling loop prints a tqdm bar per call

import torch

from cfg_common import ROOT, judge_metrics, table

from bench.record import write_result

from core.callbacks import Callbacks
from core.data.loading import DataConfig, load_dataset, prepare
from core.generators.cfg import CFGGenerator
from core.metrics.judge import get_judge
from core.train.cfg_unet import CFGTrainConfig, train_cfg

WS = [0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 7.5]


def train_peer(train, budget_s: float, batch_size: int, seed: int = 0):
    from denoising_diffusion_pytorch.classifier_free_guidance import GaussianDiffusion, Unet

    torch.manual_seed(seed)
    model = Unet(dim=64, dim_mults=(1, 2, 4, 8), num_classes=train.num_classes, cond_drop_prob=0.5, channels=train.channels)
    diffusion = GaussianDiffusion(model, image_size=train.image_size, timesteps=1000, sampling_timesteps=25)
    opt = torch.optim.Adam(diffusion.parameters(), lr=1e-4)
    x_all, y_all = train.images.float() / 255.0, train.labels  # the peer takes images in [0, 1]
    t0, step, losses = time.time(), 0, []
    while time.time() - t0 < budget_s:
        idx = torch.randint(len(train), (batch_size,))
        loss = diffusion(x_all[idx], classes=y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        if step % 100 == 0:
            print(json.dumps({"peer_step": step, "loss": sum(losses[-100:]) / 100}), flush=True)
    params = sum(p.numel() for p in model.parameters())
    return diffusion.eval(), step, time.time() - t0, sum(losses[-100:]) / max(1, len(losses[-100:])), params


def peer_sample(diffusion, labels: torch.Tensor, w: float, batch: int) -> tuple[torch.Tensor, float]:
    t0, out = time.time(), []
    torch.manual_seed(1)
    for lo in range(0, len(labels), batch):
        # cond_scale = 1 + w. At exactly 1 the peer crashes (forward_with_cond_scale returns one
        # tensor where model_predictions unpacks two), so w = 0 runs as cond_scale 1 + 1e-6.
        x = diffusion.sample(classes=labels[lo : lo + batch], cond_scale=1.0 + max(w, 1e-6))
        out.append((x.clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(out), time.time() - t0


def ours_sample(gen: CFGGenerator, labels: torch.Tensor, w: float, batch: int) -> tuple[torch.Tensor, float]:
    t0, out = time.time(), []
    seeds = list(range(len(labels)))
    for lo in range(0, len(labels), batch):
        out.append(gen.sample_batch(labels[lo : lo + batch], seeds[lo : lo + batch], w=w))
    return torch.cat(out), time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=300, help="training wall-clock budget of each model, seconds")
    ap.add_argument("--batch-size", type=int, default=64, help="training batch of both models")
    ap.add_argument("--n-per-class", type=int, default=10, help="images per class and w, both models")
    ap.add_argument("--sample-batch", type=int, default=64, help="sampling batch of both models (64 is our CPU default)")
    ap.add_argument("--ours-run", default=None, help="reuse this trained CFG run instead of training ours here")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    data = DataConfig(dataset="digits", profile="paper")
    _, train = prepare(data)
    t_all = time.time()

    # -- ours --------------------------------------------------------------------------
    if args.ours_run:
        run_dir, ours_train_s = Path(args.ours_run), float("nan")
    else:
        import shutil

        run_dir = ROOT / ".cache" / "bench" / "cfg_vs_peer_ours"
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = CFGTrainConfig(data=data, preset="tiny", steps=100_000, batch_size=args.batch_size, lr=1e-3, warmup_steps=100,
                             log_every=100, checkpoint_every=1000, preview_every=0, max_seconds=args.budget_s)
        t0 = time.time()
        train_cfg(cfg, run_dir, Callbacks(on_metrics=lambda r: print(json.dumps(r), flush=True)))
        ours_train_s = time.time() - t0
        (run_dir / "bench_train.json").write_text(json.dumps({"train_s": ours_train_s}))
    if (run_dir / "bench_train.json").exists():
        ours_train_s = json.loads((run_dir / "bench_train.json").read_text())["train_s"]
    ours_steps = json.loads((run_dir / "status.json").read_text())["step"]

    # -- peer --------------------------------------------------------------------------
    peer, peer_steps, peer_train_s, peer_loss, peer_params = train_peer(train, args.budget_s, args.batch_size)

    # -- evaluate both the same way ------------------------------------------------------
    judge = get_judge(data, device="cpu")
    test = load_dataset(data).test
    real_feats = judge.features(test.images).numpy().astype("float64")
    labels = torch.arange(train.num_classes).repeat_interleave(args.n_per_class)
    gens = {25: CFGGenerator(run_dir, sampler="dpm", steps=25, device="cpu"), "ddim": CFGGenerator(run_dir, sampler="ddim", steps=25, device="cpu")}
    rows = []
    for w in WS:
        o_imgs, o_s = ours_sample(gens[25], labels, w, args.sample_batch)
        od_imgs, od_s = ours_sample(gens["ddim"], labels, w, args.sample_batch)
        p_imgs, p_s = peer_sample(peer, labels, w, args.sample_batch)
        o, od, p = (judge_metrics(judge, real_feats, im, labels) for im in (o_imgs, od_imgs, p_imgs))
        row = {"w": w, "ours_cons": o["consistency"], "ours_ddim_cons": od["consistency"], "peer_cons": p["consistency"],
               "ours_div": o["diversity"], "peer_div": p["diversity"], "ours_fd": o["fd_judge"], "peer_fd": p["fd_judge"],
               "ours_ips": len(labels) / o_s, "ours_ddim_ips": len(labels) / od_s, "peer_ips": len(labels) / p_s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    total_s = time.time() - t_all

    best_o = max(rows, key=lambda r: r["ours_cons"])
    best_p = max(rows, key=lambda r: r["peer_cons"])
    guided = [r for r in rows if r["w"] > 0]  # both models run two passes per step when w > 0
    ips_o = sum(r["ours_ddim_ips"] for r in guided) / len(guided)
    ips_od = sum(r["ours_ips"] for r in guided) / len(guided)
    ips_p = sum(r["peer_ips"] for r in guided) / len(guided)
    ours_params = sum(p.numel() for p in gens[25].model.parameters())
    result = {"ours_steps": ours_steps, "peer_steps": peer_steps, "rows": rows, "total_s": total_s}
    print(json.dumps(result, indent=1))
    if args.no_write:
        return
    body = f"""Same data (paper-profile digits, {len(train)} training images), same wall-clock training budget ({args.budget_s:g} s each, one after the
other on the same machine), same judge, {args.n_per_class} images per class per w, sampling batch {args.sample_batch}.

| | ours (`tiny`, core.train.cfg_unet) | peer (denoising-diffusion-pytorch, classifier_free_guidance) |
|---|---|---|
| parameters | {ours_params / 1e6:.2f}M | {peer_params / 1e6:.2f}M |
| training steps in budget (batch {args.batch_size}) | {ours_steps} in {ours_train_s:.0f} s | {peer_steps} in {peer_train_s:.0f} s (final loss {peer_loss:.4f}) |
| best class-consistency | **{best_o['ours_cons']:.3f}** at w = {best_o['w']:g} (DPM-Solver++ 25) | {best_p['peer_cons']:.3f} at w = {best_p['w']:g} (DDIM 25) |
| 25-step sampling images/s, mean over w > 0 | DDIM 25: **{ips_o:.1f}**; DPM-Solver++ 25: {ips_od:.1f} | DDIM 25: {ips_p:.1f} |
| speed ratio (ours DDIM 25 / peer DDIM 25) | **{ips_o / ips_p:.1f}×** | 1× |

Targets: lead on class-consistency ({'met' if best_o['ours_cons'] > best_p['peer_cons'] else 'MISSED'}), ≥ 3× the peer's sampling images/s
({'met' if ips_o >= 3 * ips_p else 'MISSED'}). Per w (peer's `cond_scale` = 1 + w):

{table(rows, [("w", "w", "g"), ("ours_cons", "ours consistency (DPM 25)", ".2f"), ("ours_ddim_cons", "ours consistency (DDIM 25)", ".2f"), ("peer_cons", "peer consistency (DDIM 25)", ".2f"), ("ours_div", "ours diversity", ".3f"), ("peer_div", "peer diversity", ".3f"), ("ours_fd", "ours FD (judge CNN)", ".1f"), ("peer_fd", "peer FD (judge CNN)", ".1f"), ("ours_ddim_ips", "ours DDIM img/s", ".1f"), ("ours_ips", "ours DPM img/s", ".1f"), ("peer_ips", "peer DDIM img/s", ".1f")])}

Whole benchmark: {total_s / 60:.1f} min{' (ours was trained by an earlier invocation of this script, same budget and data, reused with --ours-run)' if args.ours_run else ''}. The peer's guidance also removes the component of the guidance update parallel to ε(x,c)
and rescales (its defaults, rescaled_phi 0.7), so its w is not numerically the paper's Eq. 8; ours is Eq. 8 exactly.
"""
    result.update(ours={"params_m": ours_params / 1e6, "steps": ours_steps, "best_consistency": best_o["ours_cons"], "best_w": best_o["w"],
                        "ddim25_images_per_s": ips_o, "dpm25_images_per_s": ips_od},
                  peer={"params_m": peer_params / 1e6, "steps": peer_steps, "best_consistency": best_p["peer_cons"], "best_w": best_p["w"],
                        "ddim25_images_per_s": ips_p},
                  speed_ratio=ips_o / ips_p, budget_s=args.budget_s, total_min=total_s / 60)
    print(f"wrote {write_result('cfg_vs_peer', result, markdown=body.strip(), device='cpu')}")


if __name__ == "__main__":
    main()
