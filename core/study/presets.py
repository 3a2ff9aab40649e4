"""The built-in studies (quick, paper, paper-smoke) and ``preset``, a fresh copy of one."""

from __future__ import annotations

import json

from core.data.loading import DataConfig
from core.errors import ConfigError
from core.study.config import StudyConfig

PAPER_COUNTS = [400 * (i + 1) for i in range(10)]  # the paper's Table 1 shape (500·(i+1)) at 400·(i+1): 500 per class go to the judge

CPU_COUNTS = [20 * (i + 1) for i in range(10)]  # cifar-cpu: the paper's shape (500·(i+1)) at 1/25

QUICK_METHODS = ["none", "oversample", "mixup", "cutmix", "cfg", "sd", "reweight", "logit-adjust", "posthoc-adjust", "cfg+logit-adjust"]

PRESETS: dict[str, StudyConfig] = {
    # Digits on 2 CPU cores, ≤ 15 minutes from a fresh clone (judge training included), sized so that its
    # answers stand (issue 17): 5 seeds, converged classifiers, a CFG generator that passes its gate.
    # Digits at their native 8×8 (the 16×16 upscale costs 4× and adds nothing). 30 images per class are
    # reserved for the judge, 20 for validation; the exponential profile at ratio 10 keeps 9, 12, 15, ... 94 of the rest
    # (ratio 50 left 2-6 images in the tail, where no CFG recipe was both on-class and not copying).
    # Measured per seed on one of two CPU lanes (bench/quick_recipe.py, 2026-12-02): the tiny CFG model, 700 steps
    # ≈ 78 s (500 gave off-class tails, 1000 began to copy); 2 CFG fills ≈ 17 s.
    # Issue 25: a validation split (20 per class), `real` and compare_to real, the calibrated gate, both endpoints.
    # Resized 2026-12-07 (bench/results/quick_answers.json, cifar_recipe.json "quick-b32"): on that day's 2-core machine,
    # 1.5-1.9x slower per thread than the one that sized it (bench/quick_recipe.py --part speed: classifier 29.5 steps/s
    # against 56.0, CFG 6.5 against 9.8), the study above took 22.5 min. The classifier now trains at batch 32 (lr 0.025,
    # the linear scaling of 0.05 at 64): a step costs 0.55x, and none, oversample and real still converge (validation,
    # 250 -> 500 steps: +0.4, +0.0, +0.7 points); the budget curve keeps the point the rule reads, S/2 (curve_points 2,
    # 0.5x the main run instead of 0.875x). A classifier cell then costs ~15.5 s per lane against ~34 s.
    # Digits at this size cannot show a cost of imbalance (none's minority F1 is 0.98): the quick study shows the
    # instruments working, not an answer to the paper's question; its shares of the gap read n/a.
    "quick": StudyConfig(
        name="quick",
        data=DataConfig(dataset="digits", image_size=8, profile="exponential", ratio=10.0, judge_per_class=30,
                        validation_fraction=0.1, validation_min=20),  # 20 validation images per class (10 % would be 11)
        methods=list(QUICK_METHODS),
        cfg_ws=[0.1, 7.5],
        classifiers=["small"],
        seeds=[0, 1, 2, 3, 4],
        budget="steps",
        classifier={"steps": 500, "batch_size": 32, "lr": 0.025, "weight_decay": 5e-4, "warmup_steps": 50, "eval_every": 0},
        curve_points=2,  # S/2 and S: what `converged` reads (issue 25's rule is the last doubling)
        method_params={"mixup": {"lam": 0.6}, "cutmix": {"lam": 0.6}},
        cfg_train={"preset": "tiny", "steps": 700, "batch_size": 64, "warmup_steps": 50,
                   # tail-aware training, off as in the paper: uniform_classes samples classes evenly, cbdm_tau > 0 adds CBDM (Qin et al. 2023)
                   "uniform_classes": False, "cbdm_tau": 0.0},
        cfg_sample={"sampler": "dpm", "steps": 8},
        extractor="judge",  # "auto" would fetch Inception on a connected machine: FID at 299 px on a CPU breaks the 15 minutes
        cpu_lanes=2,  # 2 worker processes of 1 thread: 21 CFG steps/s against 14.5 for one process of 2 threads
        calibration_per_class=24,  # 12 + 12 held-out images per class calibrate novelty and the gate; `real` fills with the rest
    ),
    # The paper's study for a GPU: CIFAR-10, Table 1 counts, λ = 0.6, w ∈ {0.1, 7.5}, ResNet18/50,
    # plus the long-tail baselines; budget "steps": 100 epochs of the largest (filled) set for every method.
    # Issue 25: a disjoint judge (500 per class reserved before the profile: it has not seen the classifier subset,
    # the held-out reals, the real fill or the FD reference), a 10 % validation split, so counts 400·(i+1) (class 9
    # keeps 4000 of the 4050 left), `real` (on by default), the calibrated gate, 5 seeds.
    "paper": StudyConfig(
        name="paper",
        data=DataConfig(dataset="cifar10", profile="custom", counts=PAPER_COUNTS, judge_per_class=500, validation_fraction=0.1,
                        validation_min=20),
        methods=list(QUICK_METHODS),
        cfg_ws=[0.1, 7.5],
        classifiers=["resnet18", "resnet50"],
        seeds=[0, 1, 2, 3, 4],
        target=4000,
        compare_to=["none", "oversample", "real"],
        calibration_per_class=200,
        budget="steps",
        classifier={"epochs": 100, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4, "warmup_epochs": 2.0, "cifar_stem": True},
        method_params={"mixup": {"lam": 0.6}, "cutmix": {"lam": 0.6}, "sd": {"w": 6.5, "steps": 25}},
        cfg_train={"preset": "ddpm", "steps": 100_000, "batch_size": 128, "uniform_classes": False, "cbdm_tau": 0.0},
        cfg_sample={"sampler": "dpm", "steps": 25},
    ),
    # The paper's question on CIFAR-10 on 2 CPU cores (issue 27): the paper's profile shape (class i keeps ∝ i+1), every
    # baseline the paper and the long-tail literature compare, `real` as the bound, 5 seeds, ≤ 60 minutes.
    # Sized on the validation split (bench/cifar_recipe.py, bench/results/cifar_recipe.json, 2026-12-07):
    # * 8 px: one CPU lane trains the small ResNet at batch 128 at 15.4 steps/s at 8 px and 5.0 at 16 px, the tiny CFG
    #   UNet at 5.9 and 2.0; at 16 px the 40 classifier cells alone would take about 100 minutes.
    # * The tiny ResNet (half width): 2.7x the small one's speed. Counts 50·(i+1) showed the gap (real − none ≈ 8
    #   points, 0.19-0.20 minority F1) but did not converge in budget: the small ResNet's `real` gained +2.0 points from
    #   1000 to 2000 steps, the tiny one's `none` +1.2 from 2000 to 4000 (tags b8, l8, t8).
    # * Counts 20·(i+1) (1,100 images; `real` fills to 200 a class): with the tiny ResNet at 2000 steps of 128, none and
    #   real converge (1000 → 2000: 0.0 and −0.9 points, +0.002 and −0.000 minority F1, 2 seeds) and the gap stays
    #   (validation: 7.1 points, 0.21 minority F1; tag u8). A classifier cell (2000 + 1000 steps) is ≈ 85 s of a lane,
    #   40 of them ≈ 28 min on 2 lanes; with the 5 CFG models (≈ 2 min each), the fills and the judge ≈ 35 min.
    # First measured whole with 5 seeds, each drawing its own subset (2026-12-07): 2,186 s; none, oversample and real
    # converged; real − none = 0.22 minority F1, `better`; but the minority-F1 MDE against none reached 0.12 (issue 27
    # asks ≤ 0.05): none's minority F1 moved 0.19-0.29 with the 20-60 minority images each seed drew.
    # Hence (2026-12-08, tag f8): one imbalanced subset for every seed (fixed_subset, as the paper's single imbalanced
    # CIFAR-10), and as many seeds as the hour holds, 8 (≈ 400 s a seed on 2 lanes + ≈ 150 s of judge and decoding).
    # On the validation split the subset's fixing cut real − none's seed-to-seed sd from 0.034 to 0.021 minority F1
    # (cutmix − none: 0.029 → 0.027); at 8 seeds and the study's 30 verdicts that projects to an MDE of 0.044 and 0.055
    # on validation (2,250 minority images; the test split has 5,000). The verdicts then speak for this draw of the data.
    # Measured whole so (2026-12-08, bench/results/cifar_cpu.json): 3,416 s from a fresh worktree; every clause of issue 27
    # that one run can meet is met: none, oversample and real converged; real − none = 0.215 minority F1, `better`; the
    # minority-F1 MDE against none at most 0.048. The 4× check: studies/cifar-cpu-4x.toml, bench/results/cifar_cpu_4x.json.
    "cifar-cpu": StudyConfig(
        name="cifar-cpu",
        data=DataConfig(dataset="cifar10", image_size=8, profile="custom", counts=CPU_COUNTS, judge_per_class=500,
                        validation_fraction=0.1, validation_min=20),
        methods=["none", "oversample", "mixup", "cutmix", "cfg", "logit-adjust", "posthoc-adjust"],
        cfg_ws=[0.1, 7.5],
        classifiers=["tiny"],
        seeds=list(range(8)),
        fixed_subset=True,  # every seed trains on data.seed's subset: seeds differ in initialisation, batches and fills only
        budget="steps",
        compare_to=["none", "oversample", "real"],
        calibration_per_class=200,  # 100 + 100 dropped images per class calibrate novelty and the gate; `real` fills with the rest (≥ 3,800 a class)
        classifier={"steps": 2000, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4, "warmup_steps": 50, "eval_every": 0,
                    "checkpoint_every": 0},
        curve_points=2,  # S/2 and S: the doubling `converged` reads
        method_params={"mixup": {"lam": 0.6}, "cutmix": {"lam": 0.6}},
        cfg_train={"preset": "tiny", "steps": 700, "batch_size": 64, "warmup_steps": 50, "uniform_classes": False, "cbdm_tau": 0.0},
        cfg_sample={"sampler": "dpm", "steps": 8},
        extractor="judge",  # FID's Inception at 299 px on a CPU would cost more than the study
        cpu_lanes=2,
    ),
    # The paper preset's code path on CIFAR-10 with small numbers, ~3 min on 2 CPU cores (issue #11):
    # counts 5·(i+1), the 3 smallest classes filled to 20 (30 generated images per w), 20 test images per
    # class, one seed, ResNet18 (CIFAR stem) for 4 steps of 32 (lr 0.0125: the paper preset's 0.1 at 256,
    # scaled linearly), the `small` CFG UNet for 3 steps of 16, DPM-Solver++ 10 steps. Every method runs;
    # SD is unavailable without a GPU (or without its weights).
    # generation_metrics is off: the CIFAR-10 judge CNN behind "FD (judge CNN features)" trains for
    # minutes on a CPU; the quick preset covers that code. judge_per_class stays 0, as in `paper`.
    "paper-smoke": StudyConfig(
        name="paper-smoke",
        data=DataConfig(dataset="cifar10", profile="custom", counts=[5 * (i + 1) for i in range(10)], test_per_class=20,
                        validation_fraction=0.004, validation_min=20),
        compare_to=["none", "oversample", "real"],
        methods=list(QUICK_METHODS),  # the paper preset's methods, long-tail baselines included
        cfg_ws=[0.1, 7.5],
        classifiers=["resnet18"],
        seeds=[0],
        target=20,
        classifier={"steps": 4, "batch_size": 32, "lr": 0.0125, "weight_decay": 5e-4, "warmup_steps": 1, "cifar_stem": True,
                    "eval_every": 0, "checkpoint_every": 0},
        method_params={"mixup": {"lam": 0.6}, "cutmix": {"lam": 0.6}, "sd": {"w": 6.5, "steps": 25}},
        cfg_train={"preset": "small", "steps": 3, "batch_size": 16, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 0,
                   "preview_every": 0, "preview_per_class": 1, "preview_steps": 2},
        cfg_sample={"sampler": "dpm", "steps": 10},
        generation_metrics=False,
    ),
}


# What the Study page and the CLI say of each preset: what it is, and its expected wall time on 2 CPU cores
# (minutes; None where a CPU is not what it is for). Each figure names the measurement behind it.
PRESET_INFO: dict[str, dict] = {
    "quick": {"about": "digits on 2 CPU cores: the instruments at work (no imbalance cost to close at this size)", "minutes": 14,
              "measured": "823 s on 2 cores from a fresh start, 2026-12-07 (BENCHMARKS.md, quick study answers)"},
    "cifar-cpu": {"about": "CIFAR-10 at 8 px on 2 CPU cores: the paper's question, every method between none and real", "minutes": 57,
                  "measured": "3,416 s on 2 cores from a fresh worktree, 2026-12-08 (BENCHMARKS.md, cifar-cpu)"},
    "paper": {"about": "CIFAR-10, ResNet18/50, the paper's protocol: needs a GPU", "minutes": None,
              "measured": "a GPU estimate only (BENCHMARKS.md, paper estimate)"},
    "paper-smoke": {"about": "the paper preset's code path with tiny numbers (a test, not a result)", "minutes": 6,
                    "measured": "330-414 s in CI's test runs"},
}


def preset_label(name: str) -> str:
    """The preset as a picker shows it: its name and expected time, e.g. "quick (about 14 min on 2 CPU cores)"."""
    m = (PRESET_INFO.get(name) or {}).get("minutes")
    return f"{name} (about {m} min on 2 CPU cores)" if m else f"{name} (needs a GPU)"


def preset_time(name: str) -> str:
    """One line on what the preset is, its expected time and where that figure comes from."""
    info = PRESET_INFO.get(name) or {}
    m = info.get("minutes")
    when = f"about {m} minutes on 2 CPU cores" if m else "no CPU time given: run it on a GPU"
    return f"{info.get('about', name)}. Expected: {when} ({info.get('measured', 'not measured')})."


def preset(name: str) -> StudyConfig:
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'.", f"Choose one of: {', '.join(PRESETS)}, or pass --config FILE.")
    return StudyConfig.from_dict(json.loads(json.dumps(PRESETS[name].to_dict())))  # a fresh copy
