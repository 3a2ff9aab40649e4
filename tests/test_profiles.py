import pytest
import torch

from core.data import DataConfig, ImageSet
from core.data.profiles import apply_profile, most_reduced_classes, target_counts
from core.errors import ConfigError, DataError


def cfg(**kw):
    return DataConfig(**kw)


N = [5000] * 10


def test_paper_counts():
    assert target_counts(N, cfg(profile="paper")) == [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000]


def test_full_and_balanced():
    assert target_counts([5, 7, 9], cfg(profile="full")) == [5, 7, 9]
    assert target_counts([5, 7, 9], cfg(profile="balanced")) == [5, 5, 5]
    assert target_counts([5, 7, 9], cfg(profile="balanced", counts=[3])) == [3, 3, 3]


def test_exponential_is_cifar10_lt():
    lt = target_counts(N, cfg(profile="exponential", ratio=100, minority_order="reversed"))
    assert lt == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert target_counts(N, cfg(profile="exponential", ratio=100)) == lt[::-1]


def test_linear_ratio_10_equals_paper():
    assert target_counts(N, cfg(profile="linear", ratio=10)) == target_counts(N, cfg(profile="paper"))
    lin = target_counts([1000] * 5, cfg(profile="linear", ratio=4))
    assert lin[0] == 250 and lin[-1] == 1000 and lin == sorted(lin)


def test_step():
    assert target_counts([100] * 4, cfg(profile="step", ratio=10, minority_fraction=0.5)) == [10, 10, 100, 100]
    assert target_counts([100] * 4, cfg(profile="step", ratio=10, minority_fraction=0.25, minority_order="reversed")) == [100, 100, 100, 10]


def test_custom_and_errors():
    assert target_counts([10, 10], cfg(profile="custom", counts=[3, 7])) == [3, 7]
    with pytest.raises(DataError, match="asked to keep 11 images but only 10 exist"):
        target_counts([10, 10], cfg(profile="custom", counts=[11, 7]))
    with pytest.raises(ConfigError, match="needs 2 counts"):
        target_counts([10, 10], cfg(profile="custom", counts=[1]))
    with pytest.raises(ConfigError, match="below 1"):
        target_counts([10, 10], cfg(profile="exponential", ratio=0.5))
    with pytest.raises(ConfigError, match="Unknown imbalance profile"):
        target_counts([10, 10], cfg(profile="zipf"))
    with pytest.raises(ConfigError, match="Unknown minority order"):
        target_counts([10, 10], cfg(profile="paper", minority_order="random"))
    with pytest.raises(DataError, match="no training images"):
        target_counts([10, 0], cfg(profile="full"))


def test_shuffled_order_is_a_seeded_permutation():
    a = target_counts(N, cfg(profile="paper", minority_order="shuffled", seed=1))
    b = target_counts(N, cfg(profile="paper", minority_order="shuffled", seed=1))
    c = target_counts(N, cfg(profile="paper", minority_order="shuffled", seed=2))
    assert a == b and sorted(a) == list(range(500, 5001, 500)) and a != c


def _toy(n_per=50, classes=3):
    labels = torch.arange(classes).repeat_interleave(n_per)
    images = torch.arange(len(labels), dtype=torch.int64).remainder(256).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    images[:, 0, 0, 1] = torch.arange(len(labels)) // 256  # make every image unique
    return ImageSet(images, labels, [f"c{i}" for i in range(classes)])


def _ids(s):
    return set((s.images[:, 0, 0, 0].int() + 256 * s.images[:, 0, 0, 1].int()).tolist())


def test_apply_profile_deterministic_nested_and_exact():
    train = _toy()
    a = apply_profile(train, cfg(profile="paper", seed=3))
    b = apply_profile(train, cfg(profile="paper", seed=3))
    c = apply_profile(train, cfg(profile="paper", seed=4))
    assert a.counts() == [16, 33, 50]
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    # a smaller count keeps a subset of what a larger one keeps (same seed)
    small = apply_profile(train, cfg(profile="exponential", ratio=10, seed=3))
    assert small.counts() == [5, 15, 50]  # 50 · 10^(-(2-k)/2) = 5, 15.8, 50, rounded down: at most what `a` keeps
    for k in (0, 1):
        assert _ids(small.of_class(k)) < _ids(a.of_class(k))  # a strict subset of the same seed's draw
    assert _ids(small.of_class(2)) == _ids(a.of_class(2))  # the largest class keeps all 50 in both


def test_most_reduced_classes():
    assert most_reduced_classes([500, 1000, 5000], [5000, 5000, 5000], fraction=0.34) == [0]
    assert most_reduced_classes([10, 50, 20], [10, 50, 20], fraction=0.34) == [0]
