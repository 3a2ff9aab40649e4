"""Classifier networks, on-device augmentation and the training loop (digits, CPU)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.train.augment import BatchAugment, BatchMix
from core.callbacks import Callbacks
from core.store.checkpoint import checkpoint_path, load_checkpoint
from core.data.imageset import ImageSet
from core.data.loading import DataConfig, load_dataset
from core.errors import ConfigError, TrainingError
from core.nets.resnet import build_classifier
from core.train.classifier import ClassifierConfig, lr_at, train_classifier, weighted_soft_ce


def test_resnets_cifar_stem_and_channels():
    net = build_classifier("resnet18", 10, in_channels=1, cifar_stem=True)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and net.conv1.in_channels == 1
    assert isinstance(net.maxpool, torch.nn.Identity)
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    plain = build_classifier("resnet50", 7, in_channels=3, cifar_stem=False)
    assert plain.conv1.kernel_size == (7, 7) and isinstance(plain.maxpool, torch.nn.MaxPool2d)
    assert build_classifier("small", 4, in_channels=3)(torch.randn(3, 3, 16, 16)).shape == (3, 4)
    # tiny: the same network at half width. Parameters by hand for 10 classes, 3 channels: stem 3·16·9 + BN 32;
    # stage 1 (16→16, no downsample) 2·(16·16·9 + 32); stage 2 (16→32) 16·32·9 + 32·32·9 + 2·64 + downsample 16·32 + 64;
    # stage 3 (32→64) 32·64·9 + 64·64·9 + 2·128 + 32·64 + 128; fc 64·10 + 10
    tiny = build_classifier("tiny", 10, in_channels=3)
    by_hand = (3 * 16 * 9 + 32) + 2 * (16 * 16 * 9 + 32) + (16 * 32 * 9 + 32 * 32 * 9 + 2 * 64 + 16 * 32 + 64) \
        + (32 * 64 * 9 + 64 * 64 * 9 + 2 * 128 + 32 * 64 + 128) + (64 * 10 + 10)
    assert sum(p.numel() for p in tiny.parameters()) == by_hand == 78_042
    assert tiny(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    with pytest.raises(ConfigError, match="resnet18"):
        build_classifier("vgg", 10)


def test_augment_crops_and_flips_each_image_independently():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 2, 8, 8), dtype=torch.uint8, generator=g)
    ident = BatchAugment([0.0, 0.0], [1.0, 1.0], pad=0, flip=False)
    assert torch.allclose(ident(x) * 255, x.float(), atol=1e-3)
    aug = BatchAugment([0.5, 0.5], [0.25, 0.25], pad=2, flip=True)
    out = (aug(x, generator=torch.Generator().manual_seed(1)) * 0.25 + 0.5) * 255
    padded = F.pad(x, (2, 2, 2, 2)).float()
    seen = set()
    for i in range(len(x)):  # every output is one crop of its own padded image, maybe mirrored
        match = [(dy, dx, fl) for dy in range(5) for dx in range(5) for fl in (0, 1)
                 if torch.allclose(out[i], (padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1) if fl else padded[i, :, dy:dy + 8, dx:dx + 8]), atol=1e-2)]
        assert match, f"image {i} is not a crop of its input"
        seen.add(match[0])
    assert len(seen) > 10  # offsets and flips differ between images of one batch
    assert {m[2] for m in seen} == {0, 1}


def test_batch_mix_mixes_soft_targets_with_the_images():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 6, 6)
    y = F.one_hot(torch.arange(8) % 4, 4).float()
    for kind in ("mixup", "cutmix"):
        xm, ym = BatchMix(kind, alpha=1.0)(x, y)
        assert xm.shape == x.shape and torch.allclose(ym.sum(1), torch.ones(8))
        assert (ym > 0).sum(1).max() <= 2  # each image mixes with one other
    with pytest.raises(ConfigError):
        BatchMix("blend")


def test_weighted_soft_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    soft = torch.tensor([[0.6, 0.4], [0.0, 1.0], [1.0, 0.0]])
    logp = logits.log_softmax(-1)
    per = -(soft * logp).sum(1)
    w = torch.tensor([1.0, 1.0, 0.5])
    assert weighted_soft_ce(logits, soft, w) == pytest.approx(float((w * per).sum() / w.sum()), rel=1e-6)
    # weight 0 removes an image from the loss
    assert weighted_soft_ce(logits, soft, torch.tensor([1.0, 1.0, 0.0])) == pytest.approx(float(per[:2].mean()), rel=1e-6)
    # hard one-hot targets equal the usual cross-entropy, label smoothing included
    hard = torch.tensor([0, 1, 1])
    assert weighted_soft_ce(logits, F.one_hot(hard, 2).float(), torch.ones(3), 0.1) == pytest.approx(float(F.cross_entropy(logits, hard, label_smoothing=0.1)), rel=1e-6)


def test_lr_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1) and max(lrs) == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 1e-4


def _cfg(**kw):
    base = dict(data=DataConfig(dataset="digits", profile="exponential", ratio=10), epochs=4, batch_size=64, lr=0.05, device="cpu", eval_every=2)
    return ClassifierConfig(**{**base, **kw})


def _oversampled(cfg):
    """The caller's side: the imbalanced split filled by oversampling, and how it was made."""
    from core.generators.balance import balanced_train_set, train_set_info
    from core.data.loading import prepare

    ds, imbalanced = prepare(cfg.data)
    return dict(train_set=balanced_train_set(imbalanced, "oversample", seed=cfg.seed), dataset=ds, train_set_info=train_set_info("oversample"))


def test_train_classifier_learns_writes_run_and_reports(tmp_path):
    rows = []
    given = _oversampled(_cfg())
    res = train_classifier(_cfg(), tmp_path / "run", callbacks=Callbacks(on_metrics=rows.append), **given)
    assert res["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert len(res["per_class_f1"]) == 10 and len(res["confusion_matrix"]) == 10
    assert res["minority_classes"] == [0, 1, 2]  # the classes the profile shrank most
    assert res["train_counts"] == [max(res["imbalanced_counts"])] * 10  # oversampled to the largest class
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines if not l.get("final")] == [1, 2, 3, 4] and "test_accuracy" in lines[1]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["accuracy"] == res["accuracy"]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "done"
    w, state, config = load_checkpoint(checkpoint_path(tmp_path / "run" / "checkpoints"))
    assert state["epoch"] == 4 and config["arch"] == "small"
    imb = res["imbalanced_counts"]  # oversampling adds exactly the gap to the largest class
    assert config["train_set"]["counts_by_provenance"] == {"real": imb, "oversample": [max(imb) - c for c in imb]}
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["balance_method"], saved["balance_params"], saved["balance_target"]) == ("oversample", {}, None)
    assert res["train_set_info"] == {"balance_method": "oversample", "balance_params": {}, "balance_target": None}
    # a finished run is not retrained on resume; a different config or training set is refused
    assert train_classifier(_cfg(), tmp_path / "run", resume=True, **given) == res
    with pytest.raises(ConfigError, match="different config"):
        train_classifier(_cfg(lr=0.2), tmp_path / "run", resume=True, **given)
    with pytest.raises(ConfigError, match="different config"):
        train_classifier(_cfg(), tmp_path / "run", resume=True, **{**given, "train_set_info": {**given["train_set_info"], "balance_method": "mixup"}})
    with pytest.raises(ConfigError, match="repeats config key"):
        train_classifier(_cfg(), tmp_path / "other", train_set_info={"lr": 1.0})
    with pytest.raises(ConfigError, match="already holds a run"):
        train_classifier(_cfg(), tmp_path / "run")


def test_interrupted_training_resumes_to_the_same_result(tmp_path):
    full = train_classifier(_cfg(), tmp_path / "full")
    epochs_seen = []
    stop = Callbacks(on_metrics=lambda r: epochs_seen.append(r["epoch"]), should_stop=lambda: len(epochs_seen) >= 2)
    part = train_classifier(_cfg(), tmp_path / "part", callbacks=stop)
    assert part["cancelled"] and not (tmp_path / "part" / "results.json").exists()
    assert json.loads((tmp_path / "part" / "status.json").read_text())["state"] == "cancelled"
    resumed = train_classifier(_cfg(), tmp_path / "part", resume=True)
    assert resumed["accuracy"] == full["accuracy"] and resumed["final_loss"] == pytest.approx(full["final_loss"], rel=1e-5)
    wa, _, _ = load_checkpoint(checkpoint_path(tmp_path / "full" / "checkpoints"))
    wb, _, _ = load_checkpoint(checkpoint_path(tmp_path / "part" / "checkpoints"))
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5) for k in wa)


def test_soft_labels_and_synthetic_weights(tmp_path):
    from core.generators.balance import balance
    from core.data.profiles import apply_profile
    from core.generators.baselines import MixupGenerator

    cfg = _cfg(epochs=2, synthetic_weight=0.5, train_mix="cutmix")
    ds = load_dataset(cfg.data)
    train = balance(apply_profile(ds.train, cfg.data), MixupGenerator(apply_profile(ds.train, cfg.data), lam=0.6, pairing="inter"))
    assert train.soft_labels is not None
    res = train_classifier(cfg, tmp_path / "soft", train_set=train, dataset=ds)
    assert np.isfinite(res["final_loss"]) and res["train_images"] == len(train)


def test_nan_loss_raises_training_error(tmp_path):
    with pytest.raises(TrainingError, match="non-finite") as e:
        train_classifier(_cfg(lr=1e30, epochs=2, warmup_epochs=0), tmp_path / "nan")
    assert "Lower the learning rate" in str(e.value)
    assert json.loads((tmp_path / "nan" / "status.json").read_text())["state"] == "failed"


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="Unknown classifier"):
        train_classifier(_cfg(arch="vgg11"), tmp_path / "x")
    with pytest.raises(ConfigError, match="label_smoothing"):
        train_classifier(_cfg(label_smoothing=1.5), tmp_path / "y")
    assert not (tmp_path / "x").exists()


def test_train_classifier_cli(tmp_path, capsys):
    from core.cli import main

    out = tmp_path / "cli-run"
    rc = main(["train-classifier", "--profile", "exponential", "--ratio", "10", "--method", "mixup", "--method-params", '{"lam": 0.6}',
               "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--out", str(out), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["per_class_f1"]) == 10 and (out / "results.json").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["balance_method"] == "mixup" and cfg["balance_params"] == {"lam": 0.6}
    real = cfg["train_set"]["counts_by_provenance"]["real"]
    assert cfg["train_set"]["counts_by_provenance"]["mixup"] == [max(real) - c for c in real]
    assert main(["train-classifier", "--method-params", "{oops", "--out", str(tmp_path / "x")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
