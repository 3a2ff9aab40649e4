"""Stable Diffusion generator, on a randomly initialised miniature pipeline saved to disk.

The pipeline is built once per session into models/tiny-sd (conftest points models/ at a
temp folder) and loaded back through the same path a user's weights take: a hub id
``<owner>/tiny-sd`` looked up as models/tiny-sd. No network (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import pytest
import torch

from core.generators.balance import balance
from core.data.imageset import ImageSet
from core.errors import Cancelled, ConfigError, TrainingError, WeightsMissingError
from core.generators import sd
from core.generators.registry import build_generator
from core.generators.filtering import FilterShortfall
from core.paths import models_dir

MODEL = "someone/tiny-sd"  # resolves to models/tiny-sd
CLASSES = ["cat", "dog", "sea_lion"]


from tests.sd_fixtures import one_thread, tiny_sd  # noqa: E402,F401  (pytest fixtures)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same images up to float rounding: batched kernels sum in a different order, so a batch
    size change may move a pixel by a level or two of 255 (different seeds differ by ~25 on average)."""
    return a.shape == b.shape and (a.int() - b.int()).abs().max() <= 3 and (a.float() - b.float()).abs().mean() < 0.1


def different(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or (a.float() - b.float()).abs().mean() > 1.0


def gap_threshold(values: torch.Tensor) -> float:
    """A threshold near the median that sits in a clear gap, so rounding noise cannot flip a decision."""
    ordered = values.sort().values
    lo, hi = len(ordered) // 4, 3 * len(ordered) // 4
    k = lo + int((ordered[lo + 1 : hi + 1] - ordered[lo:hi]).argmax())
    assert ordered[k + 1] - ordered[k] > 0.05
    return float(ordered[k] + ordered[k + 1]) / 2


def gen(**kw) -> sd.SDGenerator:
    params = dict(classes=CLASSES, channels=3, image_size=16, model=MODEL, steps=2, batch_size=4)
    params.update(kw)
    return sd.SDGenerator(**params)


def test_local_folder_generates_uint8_at_dataset_size(tiny_sd):
    g = gen()
    assert g.source.kind == "folder" and g.source.location == str(tiny_sd)
    cat, dog = g.generate(0, 3, seed=1), g.generate(1, 3, seed=1)
    for c, s in ((0, cat), (1, dog)):
        assert isinstance(s, ImageSet)
        assert s.images.shape == (3, 3, 16, 16) and s.images.dtype == torch.uint8
        assert s.labels.tolist() == [c] * 3 and s.classes == CLASSES
        assert list(s.provenance) == ["sd:tiny-sd@w=6.5"] * 3
        assert s.images.float().std() > 1  # not a constant image
    assert different(cat.images, dog.images)  # class index feeds the seeds and the prompt
    assert g.pipeline().native_resolution == 32 and g.describe()["resolution"] == 32


def test_grayscale_is_luma_of_rgb_and_resize_is_antialiased(tiny_sd):
    rgb = gen(image_size=32).generate(0, 2, seed=3).images.float()  # native size: no resize
    gray = gen(image_size=32, channels=1).generate(0, 2, seed=3).images
    assert gray.shape == (2, 1, 32, 32)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert (gray[:, 0].float() - luma).abs().max() <= 1.5  # rounding of two uint8 conversions
    small = gen(image_size=8).generate(0, 2, seed=3).images.float()
    assert small.shape == (2, 3, 8, 8)
    # antialiased 32 -> 8 is close to a 4x4 box average; point sampling would be far off
    box = torch.nn.functional.avg_pool2d(rgb, 4)
    assert (small - box).abs().mean() < 6
    assert (small - rgb[:, :, 1::4, 1::4]).abs().mean() > (small - box).abs().mean()


def test_seeds_reproducible_and_batch_size_invariant(tiny_sd):
    a = gen(batch_size=4).generate(2, 5, seed=7).images
    b = gen(batch_size=1).generate(2, 5, seed=7).images
    c = gen(batch_size=3).generate(2, 2, seed=7).images
    assert torch.equal(a, gen(batch_size=4).generate(2, 5, seed=7).images)  # same call, same bytes
    assert same(a, b)
    assert same(a[:2], c)  # image j does not depend on n either
    assert different(a, gen().generate(2, 5, seed=8).images)
    assert len({bytes(img.numpy()) for img in a}) == 5  # every image its own seed


def test_pipeline_loaded_once_per_process(tiny_sd):
    sd.clear_pipeline_cache()  # start cold, whatever earlier tests loaded
    g1, g2 = gen(), gen(w=0.0, scheduler="euler")
    before = sd.LOAD_COUNT["n"]
    g1.generate(0, 1), g2.generate(0, 1)
    assert g1.pipeline() is g2.pipeline()
    assert sd.LOAD_COUNT["n"] - before == 1  # two generators, one read of the weights
    # each generator keeps its own scheduler on the shared pipeline
    assert type(g1._scheduler).__name__ == "DPMSolverMultistepScheduler" and g1._scheduler.config.algorithm_type == "dpmsolver++"
    assert type(g2._scheduler).__name__ == "EulerDiscreteScheduler"


def test_guidance_conventions_and_negative_prompt(tiny_sd):
    g = gen(w=6.5)
    d = g.describe()
    assert (d["w"], d["guidance_scale"], d["cfg_active"]) == (6.5, 7.5, True)
    off = gen(w=0.0)
    assert (off.guidance_scale, off.cfg_active) == (1.0, False)
    assert gen(w=-1.0).guidance_scale == 0.0  # SD-Turbo's guidance_scale=0.0: also no guidance
    with pytest.raises(ConfigError, match="w >= 0"):
        gen(w=-2.0)
    base = g.generate(0, 2, seed=1).images
    assert different(base, off.generate(0, 2, seed=1).images)  # guidance is applied
    neg = gen(w=6.5, negative_prompt="blurry").generate(0, 2, seed=1).images
    assert different(base, neg)  # negative prompt replaces the empty unconditional prompt
    # without guidance the negative prompt has no effect (diffusers skips the unconditional pass)
    assert torch.equal(off.generate(0, 2, seed=1).images, gen(w=0.0, negative_prompt="blurry").generate(0, 2, seed=1).images)


def test_prompt_template_and_per_class_override(tiny_sd):
    g = gen(prompt="a blurry photo of a {class}", class_prompts={"dog": "a puppy", 2: "a seal on a rock"})
    assert [g.prompt_for(c) for c in range(3)] == ["a blurry photo of a cat", "a puppy", "a seal on a rock"]
    assert gen().prompt_for(2) == "a photo of a sea lion"
    a = gen(prompt="a photo of a {class}").generate(0, 1, seed=0).images
    b = gen(prompt="a drawing of a {class}").generate(0, 1, seed=0).images
    assert different(a, b)  # the prompt reaches the text encoder
    with pytest.raises(ConfigError, match="placeholder"):
        gen(prompt="a photo")
    with pytest.raises(ConfigError, match="Unknown class"):
        gen(class_prompts={"horse": "a horse"})


def test_fast_model_settings_one_step_no_guidance(tiny_sd):
    g = gen(steps=1, w=0.0, scheduler="model")
    s = g.generate(1, 2, seed=0)
    assert s.images.shape == (2, 3, 16, 16)
    assert g.describe()["steps"] == 1 and not g.describe()["cfg_active"]
    for name in ("euler", "euler-a", "ddim", "unipc", "dpm++karras"):
        assert gen(steps=2, scheduler=name).generate(0, 1).images.shape == (1, 3, 16, 16)


def test_bad_settings_are_config_errors(tiny_sd):
    for kw, msg in [({"steps": 0}, "steps"), ({"batch_size": 0}, "batch_size"), ({"scheduler": "magic"}, "scheduler"),
                    ({"resolution": 100}, "multiple of 8"), ({"channels": 4}, "channels"), ({"max_attempts": 0.5}, "max_attempts"),
                    ({"filter_classifier": object()}, "predict")]:
        with pytest.raises(ConfigError, match=msg):
            gen(**kw)
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        gen(dtype="fp16", device="cpu").generate(0, 1)
    with pytest.raises(ConfigError):
        gen().generate(5, 1)


def test_cancel_between_batches_and_inside_a_call(tiny_sd):
    g = gen(batch_size=2)
    seen = []
    with pytest.raises(Cancelled):
        g.generate(0, 6, progress=lambda d, t: seen.append(d), should_stop=lambda: len(seen) >= 1)
    assert seen == [2]  # stopped after the first batch
    polls = {"n": 0}

    def stop_on_second_step():
        polls["n"] += 1
        return polls["n"] > 2  # 1: before the call, 2: before the batch, 3: first denoising step

    with pytest.raises(Cancelled):
        gen(steps=4).generate(0, 2, should_stop=stop_on_second_step)
    assert polls["n"] == 3


class BrightnessJudge:
    """Stub reference classifier: says 'class 0' for bright images, 'class 1' otherwise."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.calls = 0

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
        return (images.float().mean(dim=(1, 2, 3)) <= self.threshold).long()


def test_filter_keeps_only_images_of_the_prompted_class(tiny_sd):
    raw = gen().generate(0, 12, seed=4).images.float().mean(dim=(1, 2, 3))
    threshold = gap_threshold(raw)  # about half of the candidates pass
    judge = BrightnessJudge(threshold)
    g = gen(filter_classifier=judge, batch_size=3)
    s = g.generate(0, 4, seed=4)
    assert s.images.shape == (4, 3, 16, 16)
    assert (s.images.float().mean(dim=(1, 2, 3)) > threshold).all()
    passing = raw > threshold
    expected = gen().generate(0, 12, seed=4).images[passing][:4]
    assert same(s.images, expected)  # the first 4 accepted candidates, in seed order
    st = g.filter_stats[0]
    assert st.accepted >= 4 and st.rejected_class == st.candidates - st.accepted > 0
    assert abs(st.rejection_rate - st.rejected_class / st.candidates) < 1e-9
    assert g.describe()["filter_stats"]["cat"]["rejection_rate"] == round(st.rejection_rate, 4)
    assert same(gen(filter_classifier=BrightnessJudge(threshold), batch_size=1).generate(0, 4, seed=4).images, s.images)


def test_filter_shortfall_reports_rejection_rate_and_keeps_accepted(tiny_sd):
    g = gen(filter_classifier=BrightnessJudge(threshold=1000.0), max_attempts=2)  # everything is "class 1"
    with pytest.raises(FilterShortfall) as info:
        g.generate(0, 3, seed=0)
    err = info.value
    assert isinstance(err, ConfigError) and "0 of 3" in str(err) and "100%" in str(err) and "'cat'" in str(err)
    assert err.stats.candidates == 6 and err.stats.rejection_rate == 1.0 and len(err.accepted) == 0
    # the same judge accepts everything of class 1
    assert len(gen(filter_classifier=BrightnessJudge(threshold=1000.0)).generate(1, 3)) == 3


def test_out_of_memory_halves_the_batch_without_changing_images(tiny_sd, monkeypatch):
    reference = gen(batch_size=4).generate(0, 4, seed=2).images
    g = gen(batch_size=4)
    real_call = sd.SDGenerator._call

    def small_gpu(self, loaded, class_idx, seeds, stop):
        if len(seeds) > 1:
            raise sd._OOM("CUDA out of memory (simulated)")
        return real_call(self, loaded, class_idx, seeds, stop)

    monkeypatch.setattr(sd.SDGenerator, "_call", small_gpu)
    assert same(g.generate(0, 4, seed=2).images, reference)
    assert g.batch_size == 1
    monkeypatch.setattr(sd.SDGenerator, "_call", lambda *a: (_ for _ in ()).throw(sd._OOM("simulated")))
    with pytest.raises(TrainingError, match="Out of GPU memory"):
        gen(batch_size=1).generate(0, 1)


def test_offline_without_weights_names_model_size_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("IMBALANCE_LAB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub's own flag is enough
    monkeypatch.setattr(sd.weights, "_in_hf_cache", lambda model: False)  # ignore the machine's real HF cache
    with pytest.raises(WeightsMissingError) as info:
        sd.SDGenerator(CLASSES, 3, 32)  # the default model
    msg = str(info.value)
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in msg and "2.1 GB" in msg and "4.3 GB" in msg
    assert str(tmp_path / "models" / "stable-diffusion-v1-5") in msg
    assert "hf download stable-diffusion-v1-5/stable-diffusion-v1-5" in msg and "--local-dir" in msg
    ok, reason = sd.sd_available()
    assert not ok and "stable-diffusion-v1-5" in reason
    ok, reason = sd.sd_available("stabilityai/sd-turbo")
    assert not ok and "2.6 GB" in reason and str(tmp_path / "models" / "sd-turbo") in reason
    with pytest.raises(WeightsMissingError, match="does not exist"):
        sd.resolve(str(tmp_path / "nowhere" / "sd"))
    (tmp_path / "not-a-pipeline").mkdir()
    with pytest.raises(WeightsMissingError, match="model_index.json"):
        sd.resolve(str(tmp_path / "not-a-pipeline"))


def test_weights_placed_in_models_folder_are_found(tiny_sd, tmp_path, monkeypatch):
    ok, reason = sd.sd_available(MODEL)
    assert ok and str(tiny_sd) in reason
    assert sd.resolve(str(tiny_sd)).kind == "folder"  # a path works too
    # the default id resolves to models/stable-diffusion-v1-5 once the folder is there
    monkeypatch.setenv("IMBALANCE_LAB_MODELS", str(tmp_path))
    (tmp_path / "stable-diffusion-v1-5").symlink_to(tiny_sd, target_is_directory=True)
    assert sd.resolve(sd.DEFAULT_MODEL).location == str(tmp_path / "stable-diffusion-v1-5")
    assert sd.resolve("runwayml/stable-diffusion-v1-5").model == sd.DEFAULT_MODEL  # old id, same folder


def test_fp16_only_folder_loads_on_cpu(tiny_sd, tmp_path):
    """A folder holding only the fp16 weight files (the recommended download) loads in fp32."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    pipe.save_pretrained(tmp_path / "half", variant="fp16")
    assert list((tmp_path / "half").glob("unet/*.fp16.safetensors")) and not list((tmp_path / "half").glob("unet/diffusion_pytorch_model.safetensors"))
    src = sd.resolve(str(tmp_path / "half"))
    assert sd.pipeline._variant(src, "fp32") == "fp16"
    s = sd.SDGenerator(CLASSES, 3, 16, model=str(tmp_path / "half"), steps=2).generate(0, 2, seed=1)
    assert s.images.shape == (2, 3, 16, 16)


def test_balance_and_build_generator_fill_minority_classes(tiny_sd):
    train = ImageSet(torch.zeros(7, 3, 16, 16, dtype=torch.uint8), torch.tensor([0, 0, 0, 0, 1, 1, 2]), CLASSES)
    g = build_generator("sd", train, model=MODEL, steps=2, w=6.5)
    assert isinstance(g, sd.SDGenerator) and (g.image_size, g.channels) == (16, 3)
    out = balance(train, g, seed=0)
    assert out.counts() == [4, 4, 4]
    assert out.counts_by_provenance()["sd:tiny-sd@w=6.5"] == [0, 2, 3]


def test_safety_checker_drops_flagged_images_instead_of_keeping_black_ones(tiny_sd, monkeypatch):
    raw = gen(image_size=32).generate(0, 10, seed=5).images.float().mean(dim=(1, 2, 3))
    threshold = gap_threshold(raw)
    g = gen(image_size=32, safety_checker=True)
    pipe = g.pipeline().pipe  # its own cache entry: safety_checker is part of the key

    def flag_bright(image, device, dtype):  # stands in for the NSFW classifier
        means = ((image.float() / 2 + 0.5).clamp(0, 1) * 255).mean(dim=(1, 2, 3))
        return image, [bool(m > threshold) for m in means]

    monkeypatch.setattr(pipe, "run_safety_checker", flag_bright)
    s = g.generate(0, 3, seed=5)
    expected = gen(image_size=32).generate(0, 10, seed=5).images[raw <= threshold][:3]
    assert same(s.images, expected)
    st = g.filter_stats[0]
    assert st.rejected_nsfw > 0 and st.rejected_class == 0 and g.describe()["filter_stats"]["cat"]["rejected_nsfw"] == st.rejected_nsfw


def test_schedulers_are_built_from_the_models_own_config(tiny_sd):
    """A generator's scheduler must not inherit settings from the one used before it."""
    gen(scheduler="dpm++karras").generate(0, 1)
    g = gen(scheduler="dpm++")
    g.pipeline()
    assert g._scheduler.config.use_karras_sigmas is False
    assert type(gen(scheduler="model").pipeline().base_scheduler).__name__ == "DPMSolverMultistepScheduler"
    m = gen(scheduler="model")
    gen(scheduler="euler").generate(0, 1)
    m.pipeline()
    assert type(m._scheduler).__name__ == "DPMSolverMultistepScheduler"  # the tiny model ships DPM-Solver
