"""Novelty (near-copy rate), precision/recall, the novelty CLI and dataset export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.data.imageset import ImageSet
from core.data.loading import DataConfig, load_dataset
from core.data.profiles import apply_profile, dropped_by_profile
from core.errors import ConfigError
from core.metrics import novelty as nv

CLASSES = ["a", "b"]


def _gauss_set(n_per_class: int, seed: int, shift: float = 0.0) -> ImageSet:
    """Noise images around two class means (uint8, 1x8x8)."""
    g = torch.Generator().manual_seed(seed)
    imgs, labels = [], []
    for c in range(2):
        base = 60.0 + 120.0 * c + shift
        imgs.append((base + 30.0 * torch.randn(n_per_class, 1, 8, 8, generator=g)).clamp(0, 255).round().to(torch.uint8))
        labels.append(torch.full((n_per_class,), c))
    return ImageSet(torch.cat(imgs), torch.cat(labels), list(CLASSES))


class _PixelExtractor:
    label = "pixels (test extractor)"

    def features(self, images):
        return nv.pixel_vectors(images).astype(np.float64)


def test_exact_copies_of_training_images_are_all_near_copies():
    train, held = _gauss_set(40, seed=1), _gauss_set(60, seed=2)
    copies = train.subset(torch.arange(0, len(train), 2))  # 20 copies per class
    out = nv.novelty(copies, train, held, extractor=_PixelExtractor())
    assert out["near_copy_rate"] == 1.0
    assert out["feature"]["near_copy_rate"] == 1.0
    for name in CLASSES:
        e = out["per_class"][name]
        assert e["n"] == 20 and e["near_copy_rate"] == 1.0 and e["median_nn_distance"] == 0.0 and e["median_nn_relative"] == 0.0
    # fresh draws from the same distribution are not copies: their rate is near the 5 % rule
    fresh = nv.novelty(_gauss_set(200, seed=3), train, held)
    assert fresh["near_copy_rate"] < 0.15
    assert 0.8 < fresh["median_nn_relative"] < 1.25


def test_held_out_half_not_used_for_calibration_scores_near_the_calibrated_rate():
    # 1,000 held-out images per class: calibrate the 10th percentile on 500, measure on the other 500.
    train, held = _gauss_set(100, seed=4), _gauss_set(1000, seed=5)
    out = nv.novelty(_gauss_set(5, seed=6), train, held, quantile=0.10, seed=0)
    # binomial s.d. of a rate near 0.10 on 500 images is 0.013; the quantile estimate adds about as much
    assert abs(out["heldout_rate"] - 0.10) <= 0.04, out["heldout_rate"]
    for name in CLASSES:
        assert abs(out["per_class"][name]["heldout_rate"] - 0.10) <= 0.05
    assert "10th percentile" in out["rule"]


def test_precision_recall_of_a_set_against_itself_is_one_and_of_disjoint_sets_zero():
    f = np.random.default_rng(0).normal(size=(80, 16))
    p, r = nv.precision_recall(f, f, k=3)
    assert p == pytest.approx(1.0) and r == pytest.approx(1.0)
    p, r = nv.precision_recall(f + 100.0, f, k=3)  # far away: outside every real k-NN ball and vice versa
    assert p == 0.0 and r == 0.0
    # a collapsed generator (every image the same real point) looks real but covers nothing
    collapsed = np.repeat(f[:1], 40, axis=0)
    p, r = nv.precision_recall(collapsed, f, k=3)
    assert p == 1.0 and r == pytest.approx(1 / 80)  # only f[0] itself lies in the generated (zero-radius) balls


def test_torch_fidelity_precision_recall_argument_order():
    """The order core.metrics.novelty relies on (requirements.txt: torch-fidelity>=0.4): generated
    features first, real second, and (precision, recall) back. A collapsed generator (40 copies of
    one real point) looks real (precision 1) and covers one real point of 80 (recall 1/80); with
    the arguments or the results swapped it would read precision 1/80 or recall 1."""
    import torch
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real = torch.as_tensor(np.random.default_rng(0).normal(size=(80, 16)), dtype=torch.float32)
    collapsed = real[:1].repeat(40, 1)
    precision, recall = calculate_precision_recall_full(collapsed, real, neighborhood=3)
    assert precision == 1.0
    assert recall == pytest.approx(1 / 80)
    swapped = calculate_precision_recall_full(real, collapsed, neighborhood=3)
    assert swapped == (pytest.approx(1 / 80), 1.0)


def test_classes_with_fewer_images_than_k_get_a_clear_message():
    with pytest.raises(ConfigError, match="at least 4 images on each side"):
        nv.precision_recall(np.zeros((3, 4)), np.ones((10, 4)), k=3)
    gen, real = np.random.default_rng(1).normal(size=(20, 4)), np.random.default_rng(2).normal(size=(20, 4))
    gl, rl = np.array([0] * 17 + [1] * 3), np.array([0] * 10 + [1] * 10)
    out = nv.fidelity_diversity(gen, gl, real, rl, CLASSES, k=3)
    assert out["per_class"]["b"]["precision"] is None and "at least 4 images" in out["per_class"]["b"]["note"]
    assert out["per_class"]["a"]["precision"] is not None and out["precision"] is not None


def test_fill_scores_has_the_study_keys():
    train, held = _gauss_set(30, seed=7), _gauss_set(30, seed=8)
    out = nv.fill_scores(train.subset(torch.arange(10)), train, held, _PixelExtractor())
    assert out["near_copy_rate"] == 1.0 and out["precision"] is not None and out["recall"] is not None
    assert out["per_class"]["a"]["n"] == 10 and "b" not in out["per_class"]


def test_nearest_training_returns_the_copied_image():
    train, held = _gauss_set(20, seed=9), _gauss_set(20, seed=10)
    preview = train.subset(torch.tensor([3, 25]))
    nn = nv.nearest_training(preview, train, held)
    assert [x["train_index"] for x in nn] == [3, 25]
    assert all(x["distance"] == 0.0 and x["near_copy"] is True for x in nn)
    assert torch.equal(nn[1]["image"], train.images[25])


def test_held_out_is_what_the_profile_dropped_never_the_test_split():
    cfg = DataConfig(dataset="digits", profile="exponential", ratio=50)
    ds = load_dataset(cfg)
    train, dropped = apply_profile(ds.train, cfg), dropped_by_profile(ds.train, cfg)
    assert len(train) + len(dropped) == len(ds.train)
    assert [a + b for a, b in zip(train.counts(), dropped.counts())] == ds.train.counts()
    tr, held, source = nv.held_out_split(cfg)
    assert tr.counts() == train.counts()
    # class 9 keeps every image: it has no held-out reference (issue 25: no test fallback), and says so
    assert source["0"] == "dropped by the profile" and source["9"] == "none: the profile dropped 0 < 10 images (not calibrated)"
    assert held.counts()[9] == 0 and held.counts()[0] == dropped.counts()[0]


def test_novelty_cli_on_exported_training_images(tmp_path, capsys):
    from core.cli import main

    args = ["--dataset", "digits", "--profile", "exponential", "--ratio", "50"]
    assert main(["dataset", *args, "--export", str(tmp_path / "train")]) == 0
    capsys.readouterr()
    assert (tmp_path / "train" / "000_0").is_dir()
    assert main(["novelty", *args, "--images", str(tmp_path / "train"), "--extractor", "none", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["near_copy_rate"] == 1.0
    assert set(out["per_class"]["0"]) >= {"n", "threshold", "near_copy_rate", "median_nn_distance"}
    assert out["per_class"]["0"]["n"] == 2  # exponential ratio 50 keeps 2 images of class 0
    # test-split images are new: not near-copies, apart from the few the rule allows
    assert main(["dataset", *args, "--export", str(tmp_path / "test"), "--split", "test"]) == 0
    capsys.readouterr()
    assert main(["novelty", *args, "--images", str(tmp_path / "test" / "samples.npz"), "--extractor", "none", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["near_copy_rate"] < 0.2


def test_novelty_cli_refuses_unknown_class_folders(tmp_path, capsys):
    from core.cli import main

    (tmp_path / "imgs" / "zebra").mkdir(parents=True)
    assert main(["novelty", "--dataset", "digits", "--images", str(tmp_path / "imgs"), "--extractor", "none", "--json"]) == 3  # bad data: a lab error
    assert "match no class" in capsys.readouterr().err


# ---------------------------------------------------- issue 17 item 5: across classes and flips
def test_a_copy_filed_under_another_class_is_a_near_copy():
    train, held = _gauss_set(40, seed=11), _gauss_set(60, seed=12)
    src = train.images[40:50]  # ten class-b training images ...
    noisy = (src.float() + 2.0 * torch.randn(src.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 255).round().to(torch.uint8)
    gen = ImageSet(noisy, torch.zeros(10, dtype=torch.long), list(CLASSES))  # ... slightly noisy, filed under class a
    out = nv.novelty(gen, train, held, extractor=_PixelExtractor(), per_sample=True)
    assert out["near_copy_rate"] == 1.0 and out["cross_class_rate"] == 1.0 and out["mirrored_rate"] == 0.0
    assert out["feature"]["near_copy_rate"] == 1.0 and out["feature"]["cross_class_rate"] == 1.0
    assert [s["neighbour_class"] for s in out["samples"]] == ["b"] * 10
    assert [s["neighbour_index"] for s in out["samples"]] == list(range(40, 50))
    e = out["per_class"]["a"]
    assert e["cross_class_copies"] == 10 and e["neighbour_classes"] == {"b": 10}
    # the nearest image shown beside a preview is that class-b image, named as such
    nn = nv.nearest_training(gen.subset(torch.tensor([0])), train, held)
    assert nn[0]["train_index"] == 40 and nn[0]["neighbour_class"] == "b" and nn[0]["near_copy"] is True


def test_a_mirrored_copy_is_a_near_copy_when_the_generator_trained_with_flips():
    train, held = _gauss_set(40, seed=13), _gauss_set(60, seed=14)
    mirrored = ImageSet(train.images[:8].flip(-1), train.labels[:8], list(CLASSES))
    without = nv.novelty(mirrored, train, held)
    assert without["near_copy_rate"] < 0.3  # a mirror image of noise is far from the image itself
    out = nv.novelty(mirrored, train, held, flips=True, per_sample=True)
    assert out["near_copy_rate"] == 1.0 and out["mirrored_rate"] == 1.0 and out["cross_class_rate"] == 0.0 and out["flips"] is True
    assert all(s["mirrored"] and s["distance"] == 0.0 for s in out["samples"])
    assert "horizontal flips" in out["rule"]
    assert out["per_class"]["a"]["mirrored_copies"] == 8
    nn = nv.nearest_training(mirrored.subset(torch.tensor([2])), train, held, flips=True)
    assert nn[0]["mirrored"] is True and torch.equal(nn[0]["image"], mirrored.images[2])


def test_digits_class9_copies_filed_under_class0_are_caught():
    # the case the issue measured at 0.00 with the same-class search
    cfg = DataConfig(dataset="digits", profile="paper")
    train, held, _ = nv.held_out_split(cfg)
    nines = train.images[train.labels == 9][:20]
    noisy = (nines.float() + 3.0 * torch.randn(nines.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 255).round().to(torch.uint8)
    gen = ImageSet(noisy, torch.zeros(len(nines), dtype=torch.long), list(train.classes))
    out = nv.novelty(gen, train, held)
    assert out["near_copy_rate"] >= 0.9 and out["cross_class_rate"] == out["near_copy_rate"]
    assert out["per_class"]["0"]["neighbour_classes"] == {"9": 20}
