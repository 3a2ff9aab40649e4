"""Long-tail losses on hand-worked 3-class examples, the post-hoc adjustment, and the step budget
of the classifier loop."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from core.data.loading import DataConfig
from core.errors import ConfigError
from core.train.classifier import ClassifierConfig, eval_subsample, train_classifier
from core.train.losses import ClassifierLoss, class_balanced_weights, posthoc_adjust


def test_class_balanced_weights_by_hand():
    # β = 0.5: effective numbers E_n = (1 − 0.5^n)/(1 − 0.5) = 1, 1.5, 1.75 for n = 1, 2, 3;
    # 1/E = 1, 2/3, 4/7 = (21, 14, 12)/21; normalised to Σ w = C = 3: w = 3·(21, 14, 12)/47
    w = class_balanced_weights([1, 2, 3], beta=0.5)
    assert w.tolist() == pytest.approx([63 / 47, 42 / 47, 36 / 47], rel=1e-6)
    assert float(w.sum()) == pytest.approx(3.0)
    # β → 0: every class weighs 1; β → 1: weights → inverse frequency, normalised (n = 1, 4: 1.6, 0.4)
    assert class_balanced_weights([5, 50, 500], beta=0.0).tolist() == pytest.approx([1, 1, 1])
    assert class_balanced_weights([1, 4], beta=0.999999).tolist() == pytest.approx([1.6, 0.4], rel=1e-4)
    with pytest.raises(ConfigError, match="cb_beta"):
        class_balanced_weights([1, 2], beta=1.0)


def test_reweight_loss_by_hand():
    counts = [1, 2, 3]  # with β = 0.5 the weights are (63, 42, 36)/47 (above)
    z = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    loss = ClassifierLoss("reweight", counts, beta=0.5)(z, y, torch.ones(2))
    l1 = math.log(1 + 2 * math.exp(-2))  # −log(e²/(e² + 2))
    l2 = math.log(3)  # uniform logits
    # reduction: Σ_i ω_i·ℓ_i / N (divided by the batch size, not by Σ ω_i)
    assert float(loss) == pytest.approx((63 / 47 * l1 + 36 / 47 * l2) / 2, rel=1e-6)
    # a soft label y = (0.5, 0, 0.5) weighs Σ_c y_c·w_c = (63 + 36)/94 and ℓ = −Σ_c y_c log p_c = log 3
    soft = torch.tensor([[0.5, 0.0, 0.5]])
    assert float(ClassifierLoss("reweight", counts, beta=0.5)(torch.zeros(1, 3), soft, torch.ones(1))) == pytest.approx(99 / 94 * math.log(3), rel=1e-6)
    # the synthetic weight s_i multiplies both the numerator and the batch size: Σ s_i ω_i ℓ_i / Σ s_i
    s = torch.tensor([1.0, 0.5])
    assert float(ClassifierLoss("reweight", counts, beta=0.5)(z, y, s)) == pytest.approx((63 / 47 * l1 + 0.5 * 36 / 47 * l2) / 1.5, rel=1e-6)


def test_logit_adjusted_loss_by_hand():
    # counts 1, 1, 2 -> π = (1/4, 1/4, 1/2); zero logits shifted by τ·log π give softmax = π,
    # so ℓ = −log π_y: log 4 for class 0 and log 2 for class 2 (τ = 1); mean over the batch
    la = ClassifierLoss("logit-adjust", [1, 1, 2], tau=1.0)
    y = F.one_hot(torch.tensor([0, 2]), 3).float()
    assert float(la(torch.zeros(2, 3), y, torch.ones(2))) == pytest.approx((math.log(4) + math.log(2)) / 2, rel=1e-6)
    # τ = 2: softmax ∝ π² = (1, 1, 4)/6 -> ℓ(class 0) = log 6
    assert float(ClassifierLoss("logit-adjust", [1, 1, 2], tau=2.0)(torch.zeros(1, 3), y[:1], torch.ones(1))) == pytest.approx(math.log(6), rel=1e-6)
    # uniform counts: log π is a constant shift, so the loss equals plain cross-entropy
    z = torch.tensor([[1.0, -1.0, 0.5]])
    assert float(ClassifierLoss("logit-adjust", [7, 7, 7])(z, y[:1], torch.ones(1))) == pytest.approx(float(F.cross_entropy(z, torch.tensor([0]))), rel=1e-6)
    with pytest.raises(ConfigError, match="Unknown loss"):
        ClassifierLoss("focal", [1, 1, 1])


def test_posthoc_adjustment_by_hand():
    # counts 1, 3 -> log π = (log 1/4, log 3/4); logits (0, 0.5): 0 + 1.386 > 0.5 + 0.288 -> class 0;
    # logits (0, 1.2): 1.386 < 1.2 + 0.288 = 1.488 -> class 1
    z = torch.tensor([[0.0, 0.5], [0.0, 1.2]])
    assert posthoc_adjust(z, [1, 3]).tolist() == [0, 1]
    assert z.argmax(-1).tolist() == [1, 1]  # unadjusted, both go to the head class
    assert posthoc_adjust(z, [1, 3], tau=0.0).tolist() == [1, 1]


def test_step_budget_and_eval_subsample(tmp_path):
    cfg = ClassifierConfig(data=DataConfig(dataset="digits", profile="exponential", ratio=10), epochs=50, steps=7, warmup_steps=2, batch_size=64,
                           lr=0.05, device="cpu", eval_every=1, eval_subsample=100, loss="logit-adjust")
    res = train_classifier(cfg, tmp_path / "run")
    n = res["train_size"]
    assert res["steps"] == 7 and res["batch_size"] == 64 and res["images_seen"] == 7 * 64  # steps win over epochs
    assert res["loss"] == "logit-adjust" and "sum_i s_i*w_i*loss_i / sum_i s_i" in res["loss_reduction"]
    assert res["epochs_run"] == pytest.approx(7 * 64 / n) and res["test_size"] == 360 and res["n"] == 360  # the full test set at the end
    per_epoch = n // 64
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [x for x in lines if not x.get("final")]
    assert [x["step"] for x in epochs] == [min(per_epoch * (i + 1), 7) for i in range(math.ceil(7 / per_epoch))]
    assert epochs[-1]["lr"] == pytest.approx(0.0, abs=1e-9)  # the cosine ends on the last step actually run
    assert all(x["test_images"] == 100 for x in epochs[:-1])  # in-training evaluations use the fixed subsample
    assert (tmp_path / "run" / "test_logits.safetensors").exists()
    a, b = eval_subsample(360, 100), eval_subsample(360, 100)
    assert torch.equal(a, b) and len(set(a.tolist())) == 100 and torch.equal(eval_subsample(50, 100), torch.arange(50))
    with pytest.raises(ConfigError, match="steps=0"):
        ClassifierConfig(steps=0).validate()
