"""The cifar-cpu preset (issue 27): its clauses, and its code path in miniature on the CIFAR-10 copy.

The miniature keeps everything the preset decides (8 px, the tiny ResNet, the profile's shape, every
method, `real`, the judge split, the validation split, the calibrated gate, curve points) and shrinks
only the numbers: 3·(i+1) images per class, 2 optimizer steps, one seed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.study.presets import PRESET_INFO, preset

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cifar10"


def test_the_preset_asks_the_papers_question_on_a_cpu():
    p = preset("cifar-cpu")
    # issue 27: these methods, ≥ 5 seeds, compared with none, oversample and real; the paper's profile shape (∝ i+1)
    assert p.methods == ["none", "oversample", "mixup", "cutmix", "cfg", "logit-adjust", "posthoc-adjust"]
    assert p.cfg_ws == [0.1, 7.5] and len(p.seeds) >= 5 and p.compare_to == ["none", "oversample", "real"]
    # one subset for every seed (the MDE lever, bench/results/cifar_recipe.json tag f8): 8 seeds, all on data.seed's draw
    assert p.seeds == list(range(8)) and p.fixed_subset and {p.data_for_seed(s).subset_seed for s in p.seeds} == {None}
    assert [v.name for v in p.variants()] == ["none", "real", "oversample", "mixup", "cutmix", "cfg@w=0.1", "cfg@w=7.5",
                                              "logit-adjust", "posthoc-adjust"]
    counts = p.data.counts
    assert p.data.dataset == "cifar10" and p.data.profile == "custom" and all(c == counts[0] * (i + 1) for i, c in enumerate(counts))
    # disjoint judge and validation splits, the calibrated gate's real half, curves that `converged` can read
    assert p.data.judge_per_class > 0 and p.data.validation_fraction > 0 and p.calibration_per_class > 0 and p.curve_points >= 2
    assert p.extractor == "judge" and p.cpu_lanes == 2 and p.classifiers == ["tiny"]
    assert preset("cifar-cpu").identity() == p.identity()  # a fresh copy each time
    info = PRESET_INFO["cifar-cpu"]
    assert info["minutes"] <= 60 and "CIFAR-10" in info["about"] and p.data.counts == [20 * (i + 1) for i in range(10)]


@pytest.mark.skipif(not (DATA / "train").is_dir(), reason="the CIFAR-10 copy is not at ../shared/data/cifar10")
@pytest.mark.timeout(600)
def test_the_preset_in_miniature_runs_every_row(tmp_path):
    from core.study.run import load_results, run_study

    p = preset("cifar-cpu")
    data = dataclasses.replace(p.data, data_dir=str(DATA), counts=[3 * (i + 1) for i in range(10)], judge_per_class=4,
                               validation_fraction=0.001, validation_min=3, test_per_class=4)
    small = dataclasses.replace(p, data=data, seeds=[0], calibration_per_class=10, device="cpu", cpu_lanes=None,
                                classifier={**p.classifier, "steps": 2, "batch_size": 8, "warmup_steps": 1},
                                cfg_train={**p.cfg_train, "steps": 2, "batch_size": 8, "warmup_steps": 1},
                                cfg_sample={**p.cfg_sample, "steps": 2})
    run_study(small, tmp_path / "s")
    res = load_results(tmp_path / "s")
    assert res["state"] == "done", res.get("notes")
    rows = {r["method"]: r for r in res["rows"]}
    assert list(rows) == ["none", "real", "oversample", "mixup", "cutmix", "cfg@w=0.1", "cfg@w=7.5", "logit-adjust", "posthoc-adjust"]
    # 3·(i+1) = 165 images; every fill tops the classes up to the largest, 30: 300 images; real from the dropped images, all of them
    assert rows["none"]["train_size"] == 165 and rows["logit-adjust"]["train_size"] == 165
    for name in ("real", "oversample", "mixup", "cutmix", "cfg@w=0.1", "cfg@w=7.5"):
        assert rows[name]["train_size"] == 300, name
    assert rows["real"]["real_images"]["used"] == rows["real"]["real_images"]["wanted"] == 135
    for r in rows.values():
        assert r["state"] in ("ok", "below_gate"), (r["method"], r["state"])
        assert r["steps"] == 2 and r["curve_split"] == "validation" and [pt["steps"] for pt in r["curve"]] == [1, 2]
    assert res["test_size"] == 40  # 4 per class, read once at the end
    assert rows["cfg@w=0.1"]["gate"]["real_precision"] is not None  # the gate holds the fill to real images' figures


def test_the_4x_check_differs_only_in_steps_and_rows():
    """studies/cifar-cpu-4x.toml: none, oversample (and real) at 4× the classifier steps and warm-up, on the main study's
    first 5 seeds (compared seed by seed), nothing else changed."""
    from core.study.config import StudyConfig

    p = preset("cifar-cpu")
    q4 = StudyConfig.from_toml(ROOT / "studies" / "cifar-cpu-4x.toml")
    assert q4.methods == ["none", "oversample"] and [v.name for v in q4.variants()] == ["none", "real", "oversample"]
    assert (q4.classifier["steps"], q4.classifier["warmup_steps"]) == (4 * p.classifier["steps"], 4 * p.classifier["warmup_steps"])
    assert q4.seeds == p.seeds[:5] and q4.fixed_subset is True
    assert {**q4.identity(), "name": p.name, "methods": p.methods, "classifier": p.classifier, "seeds": p.seeds} == p.identity()
