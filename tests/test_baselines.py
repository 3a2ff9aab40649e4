import numpy as np
import pytest
import torch

from core.generators.balance import balance, fill_plan
from core.data import ImageSet
from core.errors import ConfigError, DataError
from core.generators import build_generator
from core.generators.base import Cancelled


def toy():
    # class c images are constant 10*(c+1) + small per-image offset, 1 channel 8x8
    labels = torch.tensor([0] * 4 + [1] * 8 + [2] * 12)
    offs = torch.cat([torch.arange(4), torch.arange(8), torch.arange(12)])
    images = (10 * (labels + 1) * 5 + offs).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()
    return ImageSet(images, labels, ["a", "b", "c"])


def test_balance_fills_to_largest_with_provenance():
    train = toy()
    out = balance(train, build_generator("oversample", train), seed=0)
    assert out.counts() == [12, 12, 12]
    assert out.counts_by_provenance() == {"real": [4, 8, 12], "oversample": [8, 4, 0]}
    # duplicates are real images of the right class
    gen = out.subset(np.nonzero(out.provenance == "oversample")[0])
    real_vals = {c: set(train.of_class(c).images[:, 0, 0, 0].tolist()) for c in range(3)}
    assert all(int(v) in real_vals[int(l)] for v, l in zip(gen.images[:, 0, 0, 0], gen.labels))
    assert balance(train, build_generator("none", train)) is train
    assert fill_plan([4, 8, 12], 10) == [6, 2, 0]


def test_mixup_fixed_lambda_intra_class_pixels():
    train = toy()
    g = build_generator("mixup", train, lam=0.6)
    s = g.generate(0, 50, seed=1)
    assert s.labels.eq(0).all() and s.soft_labels is None and (s.provenance == "mixup").all()
    vals = sorted(set(train.of_class(0).images[:, 0, 0, 0].tolist()))
    possible = {round(0.6 * a + 0.4 * b) for a in vals for b in vals if a != b}
    assert set(s.images[:, 0, 0, 0].tolist()) <= possible
    assert torch.equal(s.images, g.generate(0, 50, seed=1).images)  # seeded
    assert not torch.equal(s.images, g.generate(0, 50, seed=2).images)


def test_mixup_inter_class_soft_labels():
    train = toy()
    s = build_generator("mixup", train, lam=0.6, pairing="inter").generate(0, 40, seed=0)
    assert s.soft_labels.shape == (40, 3)
    assert torch.allclose(s.soft_labels.sum(1), torch.ones(40))
    assert torch.allclose(s.soft_labels[:, 0], torch.full((40,), 0.6))
    assert (s.soft_labels[:, 1:].max(1).values - 0.4).abs().max() < 1e-6
    # pixel = 0.6*a + 0.4*b with b from the other class named by the soft label
    other = s.soft_labels[:, 1:].argmax(1) + 1
    a_vals = set(train.of_class(0).images[:, 0, 0, 0].tolist())
    for px, o in zip(s.images[:, 0, 0, 0].tolist(), other.tolist()):
        b_vals = train.of_class(o).images[:, 0, 0, 0].tolist()
        assert any(round(0.6 * a + 0.4 * b) == px for a in a_vals for b in b_vals)


def test_mixup_beta_lambda_keeps_minority_dominant():
    train = toy()
    s = build_generator("mixup", train, alpha=0.4, pairing="inter").generate(0, 200, seed=0)
    assert (s.soft_labels[:, 0] >= 0.5).all() and s.soft_labels[:, 0].std() > 0.01


def test_cutmix_box_area_and_labels():
    train = toy()
    s = build_generator("cutmix", train, lam=0.6, pairing="inter").generate(0, 30, seed=0)
    a_vals = set(train.of_class(0).images[:, 0, 0, 0].tolist())
    for img, soft in zip(s.images, s.soft_labels):
        from_a = torch.tensor([int(v) in a_vals for v in img.flatten().tolist()]).float().mean()
        # the kept share of pixels is exactly the soft label of the minority class
        assert abs(float(from_a) - float(soft[0])) < 1e-6
        assert float(soft[0]) == 39 / 64  # box side round(sqrt(0.4)·8) = round(5.06) = 5 -> 25 of 64 pixels replaced
    s2 = build_generator("cutmix", train).generate(1, 10, seed=0)
    assert s2.soft_labels is None and s2.labels.eq(1).all()


def test_bad_requests():
    train = toy()
    g = build_generator("mixup", train)
    with pytest.raises(ConfigError, match="Unknown class"):
        g.generate(7, 3)
    with pytest.raises(ConfigError, match="positive"):
        g.generate(0, 0)
    with pytest.raises(ConfigError, match="strictly between"):
        build_generator("mixup", train, lam=1.5)
    with pytest.raises(ConfigError, match="Unknown method"):
        build_generator("smote", train)
    with pytest.raises(ConfigError, match="positive"):
        balance(train, g, target=0)


def test_balance_cancel_and_progress():
    train = toy()
    seen = []
    out = balance(train, build_generator("cutmix", train), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (12, 12) and out.counts() == [12, 12, 12]
    with pytest.raises(Cancelled):
        balance(train, build_generator("cutmix", train), should_stop=lambda: True)


def test_class_without_real_images():
    train = toy().subset(list(range(4, 24)))  # drop class 0
    with pytest.raises(DataError, match="no real images"):
        build_generator("oversample", train).generate(0, 3)
