"""Issue 25 item 4: a validation split reserved per class before the profile, disjoint from the judge
split and the test set; the study's budget curves and convergence read it; no metric falls back to test images.

Image identities come from tests/test_judge_split.py's ``indexed_digits`` (each image spells its sklearn row)."""

from __future__ import annotations

import pytest

from core.data.loading import DataConfig, load_dataset
from core.data.profiles import apply_profile, dropped_by_profile
from core.errors import ConfigError, DataError
from core.metrics.novelty import held_out_from
from tests.test_judge_split import N_DIGITS, TRAIN, ids, indexed_digits  # noqa: F401  (a fixture)


def test_validation_split_is_disjoint_from_judge_test_and_every_profile_subset(indexed_digits):  # noqa: F811
    cfg = DataConfig(image_size=8, profile="exponential", ratio=10.0, judge_per_class=30, validation_fraction=0.1, validation_min=20)
    ds = load_dataset(cfg)
    judge, val, pool, test = ids(ds.judge), ids(ds.validation), ids(ds.train), ids(ds.test)
    # per class: max(20, round(0.1·(n_c − 30))) = 20 for every digit class (n_c − 30 ≤ 116)
    assert ds.validation.counts() == [20] * 10 and len(val) == 200
    assert len(pool) == sum(TRAIN) - 300 - 200
    for a, b in ((judge, val), (val, test), (val, pool), (judge, test), (judge, pool), (pool, test)):
        assert a.isdisjoint(b)
    assert judge | val | pool | test == set(range(N_DIGITS))
    for subset_seed in (0, 3):
        c = DataConfig.from_dict({**cfg.to_dict(), "subset_seed": subset_seed})
        kept, held = ids(apply_profile(ds.train, c)), held_out_from(dropped_by_profile(ds.train, c))[0]
        assert kept <= pool and ids(held) <= pool and val.isdisjoint(kept | ids(held))
    # a fixed stream: the same validation images on every load, whatever the subset seed
    assert ids(load_dataset(DataConfig.from_dict({**cfg.to_dict(), "subset_seed": 5})).validation) == val


def test_validation_fraction_and_minimum_by_hand():
    # CIFAR-like counts are not needed: digits without the judge split, 10 % of 142..146 rounds to 14 or 15, the minimum 10 is below
    ds = load_dataset(DataConfig(image_size=8, validation_fraction=0.1, validation_min=10))
    assert ds.validation.counts() == [round(0.1 * n) for n in TRAIN]
    assert ds.train.counts() == [n - round(0.1 * n) for n in TRAIN]
    assert load_dataset(DataConfig(image_size=8)).validation is None  # off by default outside a study


@pytest.mark.parametrize("kw,err", [({"validation_fraction": 0.6}, ConfigError), ({"validation_fraction": -0.1}, ConfigError),
                                    ({"validation_fraction": 0.1, "validation_min": 0}, ConfigError),
                                    ({"validation_fraction": 0.1, "validation_min": 200}, DataError)])
def test_bad_validation_options_say_what_to_change(kw, err):
    with pytest.raises(err, match="validation"):
        load_dataset(DataConfig(image_size=8, **kw))


def test_the_curve_reads_validation_figures_never_test():
    from core.study.cells import curve_figures
    from core.study.rows import _curve_fields

    class Cfg:
        converged_gain, converged_gain_minority = 0.01, 0.02

    # test accuracy 0.99 at 20 steps would say "converged" (+0.5 pt from 0.985); the validation figures gain +3 pts: not converged
    run = {"steps": 20, "accuracy": 0.99, "minority_f1": 0.99, "validation": {"accuracy": 0.93, "minority_f1": 0.90, "n": 200},
           "curve": [{"steps": 10, **curve_figures({"accuracy": 0.985, "minority_f1": 0.98,
                                                    "validation": {"accuracy": 0.90, "minority_f1": 0.89}})}]}
    f = _curve_fields(Cfg, [0], [run])
    assert [p["accuracy"] for p in f["curve"]] == [0.90, 0.93] and f["curve_split"] == "validation"
    assert f["converged"] is False and f["curve_last_gain"] == pytest.approx(0.03)
