"""The judge: a small CNN trained on a dataset's *real, balanced* images.

Which images: with ``DataConfig.judge_per_class`` k > 0, the judge split (k per class, taken
out of train before any profile, so disjoint from everything the metrics compare against);
with 0, the whole train split, which overlaps the FD reference, the held-out reals and the
classifier's subset (``judge.info["train_source"]`` says which).

It answers "does this generated image look like its class?" (class-consistency), gives
features for a diversity score, serves as the reference classifier for filtering, and is
the offline substitute feature extractor for a Fréchet distance. Distances on its
features are reported as "FD (judge CNN)", never as FID (which means Inception-v3).

Weights are cached in ``models/judges/<key>.safetensors`` so every page, bench and
study uses the same judge for a dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from core.store.atomic import atomic_write, atomic_write_json
from core.data.imageset import ImageSet
from core.errors import Cancelled
from core.data.loading import DataConfig, load_dataset
from core.nets.smallcnn import SmallCNN
from core.paths import models_dir

MIN_STEPS = 150  # a judge trains at least this many steps when its epochs are not given


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


class Judge:
    def __init__(self, net: SmallCNN, classes: list[str], channels: int, image_size: int, info: dict | None = None, device=None):
        self.device = torch.device(device) if device else _default_device()
        self.net = net.to(self.device).eval()
        self.classes, self.channels, self.image_size = list(classes), channels, image_size
        self.info = info or {}

    def _prep(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != self.channels:
            images = images.float().mean(1, keepdim=True).round().to(torch.uint8) if self.channels == 1 else images.expand(-1, self.channels, -1, -1)
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images.float(), size=(self.image_size, self.image_size), mode="bilinear", antialias=True).round().clamp(0, 255).to(torch.uint8)
        return images

    @torch.no_grad()
    def _batched(self, images: torch.Tensor, fn, batch_size: int = 512) -> torch.Tensor:
        images = self._prep(images)
        outs = [fn(to_input(images[i : i + batch_size].to(self.device))).float().cpu() for i in range(0, len(images), batch_size)]
        return torch.cat(outs) if outs else torch.empty(0)

    def probs(self, images: torch.Tensor) -> torch.Tensor:
        return self._batched(images, lambda x: self.net(x).softmax(-1))

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.probs(images).argmax(-1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self._batched(images, self.net.features)


def class_consistency(judge: Judge, images: torch.Tensor, labels: torch.Tensor | int) -> float:
    """Share of images the judge assigns to the class they were conditioned on."""
    labels = torch.full((len(images),), labels) if isinstance(labels, int) else labels
    return float((judge.predict(images) == labels.cpu()).float().mean()) if len(images) else float("nan")


def diversity(judge: Judge, images: torch.Tensor) -> float:
    """Mean pairwise Euclidean distance of L2-normalised judge features (0 = all identical)."""
    if len(images) < 2:
        return float("nan")
    f = F.normalize(judge.features(images), dim=1)
    d = torch.cdist(f, f)
    n = len(f)
    return float(d.sum() / (n * (n - 1)))


def _key(ds_name: str, source: str, train: ImageSet) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([ds_name, source, list(train.images.shape), train.counts()]).encode())
    h.update(train.labels.numpy().tobytes())
    h.update(train.images[:: max(1, len(train) // 256)].numpy().tobytes())
    return f"{ds_name}-{train.image_size}px-{h.hexdigest()[:12]}"


def train_judge(train: ImageSet, test: ImageSet | None = None, epochs: int | None = None, batch_size: int = 128, seed: int = 0,
                device=None, progress: Callable[[int, int, str], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> Judge:
    """Train a SmallCNN on ``train`` with shift augmentation; returns the judge and its test accuracy.
    ``should_stop``: polled every step; True raises ``core.errors.Cancelled`` (a job's Cancel reaches it)."""
    device = torch.device(device) if device else _default_device()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = SmallCNN(train.channels, train.num_classes).to(device)
    # Enough passes to converge on small sets (digits: 15 epochs, 100% test accuracy),
    # a bounded budget (~150k image-steps, 3 epochs of CIFAR-10) on big ones, and at least
    # MIN_STEPS steps: 15 epochs of a 300-image judge split are 30 steps (52 % test accuracy on
    # digits), 150 steps reach 98.6 %. Full train splits (digits: 165 steps) are unchanged.
    per_epoch = max(1, len(train) // batch_size)
    epochs = epochs or max(int(min(15, max(3, 150_000 // max(len(train), 1)))), math.ceil(MIN_STEPS / per_epoch))
    steps = epochs * per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    x_all, y_all = train.images, train.labels
    pad = max(1, train.image_size // 8)
    net.train()
    for step in range(steps):
        if should_stop is not None and should_stop():
            raise Cancelled(f"judge training cancelled at step {step} of {steps}; nothing was saved")
        idx = torch.randint(len(train), (batch_size,), generator=g)
        x = x_all[idx].float()
        # random shift (pad + crop); no flips, which would change digit classes
        x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        dx, dy = torch.randint(2 * pad + 1, (2,), generator=g).tolist()
        x = x[:, :, dy : dy + train.image_size, dx : dx + train.image_size]
        loss = F.cross_entropy(net(to_input(x).to(device)), y_all[idx].to(device), label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step % 20 == 0 or step == steps - 1):
            progress(step + 1, steps, f"training judge, loss {loss.item():.3f}")
    judge = Judge(net, train.classes, train.channels, train.image_size, device=device)
    if test is not None and len(test):
        judge.info["test_accuracy"] = class_consistency(judge, test.images, test.labels)
    judge.info.update({"epochs": epochs, "train_images": len(train)})
    return judge


def train_source(data_cfg: DataConfig) -> str:
    """Which images the judge for ``data_cfg`` trains on, in words (judge.info["train_source"])."""
    k = int(getattr(data_cfg, "judge_per_class", 0) or 0)
    if k > 0:
        return f"judge split ({k} per class)"
    return "full train split (biased: overlaps the FD reference and the classifier's data)"


def get_judge(data_cfg: DataConfig, device=None, progress: Callable[[int, int, str], None] | None = None, retrain: bool = False,
              should_stop: Callable[[], bool] | None = None) -> Judge:
    """The cached judge for ``data_cfg``'s dataset (the profile is ignored: real balanced images).

    With ``data_cfg.judge_per_class`` k > 0 it trains on the judge split (``ds.judge``, k images
    per class taken out of train before any profile), so no image that FD/KID, precision/recall
    or novelty compares against (FD reference, held-out reals, the classifier's subset, fills made
    from them) was seen by the judge. With 0 it trains on the whole train split, as before."""
    full = DataConfig.from_dict({**data_cfg.to_dict(), "profile": "full"})
    ds = load_dataset(full)
    train, source = (ds.judge, f"{ds.source}|judge split") if ds.judge is not None else (ds.train, ds.source)
    key = _key(ds.name, source, train)
    split = {"train_source": train_source(full), "judge_per_class": int(full.judge_per_class or 0), "train_counts": train.counts()}
    folder = models_dir() / "judges"
    wpath, ipath = folder / f"{key}.safetensors", folder / f"{key}.json"
    if wpath.exists() and ipath.exists() and not retrain:
        info = {**json.loads(ipath.read_text()), **split}  # judges cached before the split was recorded get it here
        net = SmallCNN(ds.channels, len(ds.classes))
        net.load_state_dict(load_file(str(wpath)))
        info["weights_sha1"] = _weights_digest(wpath)  # judges saved before the digest was recorded get it here
        return Judge(net, ds.classes, ds.channels, ds.image_size, info, device=device)
    judge = train_judge(train, ds.test, device=device, progress=progress, should_stop=should_stop)
    judge.info.update({"dataset": ds.name, "key": key, **split})
    atomic_write(wpath, lambda tmp: save_file({k: v.cpu() for k, v in judge.net.state_dict().items()}, tmp))
    judge.info["weights_sha1"] = _weights_digest(wpath)
    atomic_write_json(ipath, judge.info)
    return judge


def _weights_digest(path) -> str:
    """The saved weights' own hash: the FD reference cache is keyed on it, so a retrained judge
    (same data key, new weights) never meets feature statistics its predecessor computed."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]
