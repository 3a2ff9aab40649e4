"""Classifier-free guidance (Eq. 8) and the sampler, on stub and randomly initialised networks."""

import pytest
import torch

from core.diffusion.guidance import cfg_eps, check_w, guidance_scale, guided_eps
from core.diffusion.samplers import make_scheduler, sample
from core.errors import ConfigError
from core.nets.unet import PRESETS, build_unet, null_class

NULL = 10


class StubNet:
    """ε(x, t, c) = x·(c + 1) + t/1000, recording every call's batch size."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, labels):
        self.calls.append(len(x))
        return x * (labels.float() + 1).view(-1, 1, 1, 1) + (t.float() / 1000).view(-1, 1, 1, 1)


def test_guided_eps_matches_hand_computation():
    net = StubNet()
    x = torch.ones(2, 1, 2, 2)
    t = torch.tensor([0, 500])
    labels = torch.tensor([2, 0])
    out = cfg_eps(net, x, t, labels, 7.5, NULL)
    # image 0: ε(x,c) = 1·3 + 0 = 3, ε(x) = 1·11 + 0 = 11  ->  8.5·3 − 7.5·11 = −57
    # image 1: ε(x,c) = 1·1 + 0.5 = 1.5, ε(x) = 11.5      ->  8.5·1.5 − 7.5·11.5 = −73.5
    assert torch.allclose(out[0], torch.full((1, 2, 2), -57.0))
    assert torch.allclose(out[1], torch.full((1, 2, 2), -73.5))
    assert net.calls == [4]  # one batched forward of 2B images


def test_batched_and_separate_passes_agree():
    net = StubNet()
    x, t, labels = torch.randn(3, 1, 4, 4), torch.tensor([1, 2, 3]), torch.tensor([0, 4, 9])
    a = cfg_eps(net, x, t, labels, 0.1, NULL, batched=True)
    b = cfg_eps(net, x, t, labels, 0.1, NULL, batched=False)
    assert net.calls == [6, 3, 3]
    assert torch.allclose(a, b, atol=1e-6)


def test_w_zero_is_plain_conditional_in_one_pass():
    net = StubNet()
    x, t, labels = torch.randn(3, 1, 4, 4), torch.tensor([1, 2, 3]), torch.tensor([0, 4, 9])
    out = cfg_eps(net, x, t, labels, 0.0, NULL)
    assert net.calls == [3]
    assert torch.equal(out, x * (labels.float() + 1).view(-1, 1, 1, 1) + (t.float() / 1000).view(-1, 1, 1, 1))


def test_per_image_w_and_guidance_scale():
    e_c, e_u = torch.full((2, 1, 1, 1), 2.0), torch.full((2, 1, 1, 1), 5.0)
    out = guided_eps(e_c, e_u, torch.tensor([0.0, 1.0]))
    assert out.flatten().tolist() == [2.0, 2 * 2.0 - 5.0]
    assert guidance_scale(7.5) == 8.5 and guidance_scale(0.0) == 1.0
    # diffusers' form ε(x) + s·(ε(x,c) − ε(x)) with s = 1 + w is the same number
    assert torch.allclose(guided_eps(e_c, e_u, 0.1), e_u + guidance_scale(0.1) * (e_c - e_u))


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "abc"])
def test_bad_w_is_refused(bad):
    with pytest.raises(ConfigError, match="w"):
        check_w(bad)


def test_bad_sampler_settings_are_refused():
    with pytest.raises(ConfigError, match="positive"):
        make_scheduler("dpm", 0)
    with pytest.raises(ConfigError, match="Unknown sampler"):
        make_scheduler("euler", 10)
    with pytest.raises(ConfigError, match="exceed"):
        make_scheduler("ddpm", 1001)


def test_presets_build_with_null_label():
    m = build_unet("tiny", 10, 1, 16)
    assert null_class(m) == 10 and m.config.num_class_embeds == 11
    assert sum(p.numel() for p in m.parameters()) < 2_000_000
    assert set(PRESETS) == {"tiny", "small", "ddpm"}
    with pytest.raises(ConfigError, match="multiple of"):
        build_unet("tiny", 10, 1, 18)
    with pytest.raises(ConfigError, match="preset"):
        build_unet("huge", 10, 1, 16)


@pytest.fixture(scope="module")
def tiny_eps():
    from core.diffusion.samplers import model_eps_fn

    torch.manual_seed(0)
    return model_eps_fn(build_unet("tiny", 10, 1, 16).eval(), "cpu")


@pytest.mark.parametrize("sampler,steps", [("ddpm", 6), ("ddim", 5), ("dpm", 5)])
def test_seeds_fix_images_and_batch_size_does_not_matter(tiny_eps, sampler, steps):
    kw = dict(shape=(1, 16, 16), null_label=NULL, w=2.0, sampler=sampler, steps=steps)
    full = sample(tiny_eps, torch.tensor([1, 2, 3, 4]), [11, 12, 13, 14], **kw)
    again = sample(tiny_eps, torch.tensor([1, 2, 3, 4]), [11, 12, 13, 14], **kw)
    part = sample(tiny_eps, torch.tensor([3, 4]), [13, 14], **kw)  # the same images in a smaller batch
    other = sample(tiny_eps, torch.tensor([1, 2, 3, 4]), [21, 22, 23, 24], **kw)
    assert torch.equal(full, again)
    assert torch.allclose(full[2:], part, atol=1e-4)
    assert (full - other).abs().mean() > 0.05
    assert full.min() >= -1 and full.max() <= 1
