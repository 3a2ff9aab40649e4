"""The CFG generator: a trained class-conditional diffusion model behind the Generator interface.

    gen = CFGGenerator("runs/my-cfg", w=7.5, sampler="dpm", steps=25)
    minority = gen.generate(class_idx=0, n=500, seed=0)     # ImageSet, provenance "cfg@w=7.5"

``w`` is the paper's guidance strength (Eq. 8, w = 0 plain conditional); diffusers'
``guidance_scale`` is 1 + w. Images are made in batches; image j of class c has the
seed ``image_seed(seed, c, j)``, so the batch size never changes an image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from diffusers import UNet2DModel

from core.store.atomic import atomic_write, atomic_write_json
from core.store.checkpoint import checkpoint_path, load_checkpoint
from core.data.imageset import ImageSet
from core.settings.device import resolve_device
from core.diffusion.guidance import check_w, guidance_scale, per_class_w
from core.diffusion.samplers import check_sampler, model_eps_fn, sample, to_uint8
from core.errors import ConfigError, WeightsMissingError  # missing weights: a lab error (exit 3), not a usage error
from core.generators.base import Cancelled, Generator, Progress, ShouldStop, image_seed
from core.store.imageio import save_png


def find_checkpoint(run_dir: str | os.PathLike, checkpoint: str = "latest") -> Path:
    """A run folder (or a checkpoint folder) -> the checkpoint folder to load, with clear errors."""
    path = Path(run_dir).expanduser()
    if (path / "weights.safetensors").exists():
        return path
    if not path.exists():
        raise WeightsMissingError(f"CFG run folder {path} does not exist.", "Pass the --out folder of a finished `python -m core train-cfg` run.")
    if checkpoint not in ("latest", "best"):
        raise ConfigError(f"Unknown checkpoint '{checkpoint}'.", "Use 'latest' or 'best'.")
    found = checkpoint_path(path / "checkpoints", checkpoint)
    if found is None:
        raise WeightsMissingError(
            f"{path} has no '{checkpoint}' checkpoint (checkpoints/{checkpoint}/weights.safetensors).",
            "Train it first (python -m core train-cfg --out ...), let it reach its first checkpoint, or resume it with --resume.",
        )
    return found


def load_model(run_dir: str | os.PathLike, checkpoint: str = "latest", device: str | torch.device = "cpu", ema: bool = True) -> tuple[UNet2DModel, dict, dict]:
    """(network in eval mode, checkpoint config, checkpoint state) of a CFG run; EMA weights by default."""
    path = find_checkpoint(run_dir, checkpoint)
    weights, state, config = load_checkpoint(path)
    if config.get("kind") != "cfg" or "model" not in config:
        raise ConfigError(f"{path} is not a CFG diffusion checkpoint.", "Point --run at a folder made by `python -m core train-cfg`.")
    try:
        model = UNet2DModel.from_config(config["model"])
        prefix = "ema." if ema and any(k.startswith("ema.") for k in weights) else "model."
        sd = model.state_dict()
        own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        sd.update(own)  # EMA holds parameters only; buffers come from the model weights
        sd.update({k[6:]: v for k, v in weights.items() if k.startswith("model.") and k[6:] not in own})
        model.load_state_dict(sd)
    except Exception as exc:  # noqa: BLE001 - any mismatch means a broken or foreign checkpoint
        raise ConfigError(f"Checkpoint {path} is corrupt or from another model ({type(exc).__name__}: {str(exc)[:200]}).", "Use the run's other checkpoint (best/latest) or retrain.") from exc
    return model.to(device).eval(), config, state


class CFGGenerator(Generator):
    """Samples a class with classifier-free guidance from a trained CFG run."""

    def __init__(
        self,
        run_dir: str | os.PathLike,
        w: float = 0.0,  # the paper's guidance strength; diffusers guidance_scale = 1 + w
        sampler: str = "dpm",  # ddpm | ddim | dpm
        steps: int = 25,  # sampler steps (DDPM: the paper's 1000)
        batch_size: int | None = None,  # images per sampling batch (never changes the images); None = 256 on CUDA, 64 on CPU
        device: str | None = None,  # cpu | cuda | cuda:N; None = CUDA if available
        checkpoint: str = "latest",  # latest | best
        classes: list[str] | None = None,  # if given: the dataset this must match (class count)
        channels: int | None = None,  # ... and its channels
        image_size: int | None = None,  # ... and its resolution
        w_per_class: list[float] | None = None,  # one w per class (overrides w and w_gamma)
        w_gamma: float = 0.0,  # per-class w_c = w·(n_max/n_c)^γ from the run's training counts; 0 = one w for all
        w_max: float | None = None,  # cap of w_c under w_gamma
    ):
        self.w = check_w(w)
        check_sampler(sampler, steps)
        self.device = resolve_device(device)
        if batch_size is None:
            # CPU convolutions run fastest on small batches (tiny preset: ~1.8k images/s per
            # forward at 128 [cond+uncond of 64] vs ~1.0k at 512), GPUs on large ones.
            batch_size = 256 if self.device.type == "cuda" else 64
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.", "Use e.g. 256 (lower it if memory runs out).")
        self.sampler, self.steps, self.batch_size = sampler, steps, batch_size
        self.run_dir, self.checkpoint = Path(run_dir), checkpoint
        self.model, self.config, state = load_model(run_dir, checkpoint, self.device)
        self.trained_steps = int(state.get("step", 0))
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        ck_classes, ck_ch, ck_size = self.config["classes"], int(self.config["channels"]), int(self.config["image_size"])
        problems = []
        if classes is not None and len(classes) != len(ck_classes):
            problems.append(f"{len(ck_classes)} classes, not {len(classes)}")
        if channels is not None and channels != ck_ch:
            problems.append(f"{ck_ch} channels, not {channels}")
        if image_size is not None and image_size != ck_size:
            problems.append(f"{ck_size}x{ck_size} pixels, not {image_size}x{image_size}")
        if problems:
            data = self.config.get("train", {}).get("data", {})
            raise ConfigError(
                f"The CFG model in {self.run_dir} was trained on another dataset ({data.get('dataset', '?')}): it makes " + "; ".join(problems) + ".",
                "Train a CFG model on this dataset (python -m core train-cfg --dataset ... --out RUN) and use that run.",
            )
        super().__init__(classes if classes is not None else ck_classes, ck_ch, ck_size)
        self.null_label = int(self.config["null_label"])
        self.beta_schedule = self.config.get("beta_schedule", "linear")
        self.class_w: list[float] | None = None  # None: the single w for every class
        if w_per_class is not None or float(w_gamma or 0) > 0:
            self.class_w = per_class_w(self.w, self.config["train_counts"], w_per_class, w_gamma, w_max)
        self.w_rule = ("w_c=[" + ",".join(f"{v:g}" for v in self.class_w) + "]" if w_per_class is not None
                       else f"w_c={self.w:g}*(n_max/n_c)^{float(w_gamma):g}" + (f"<={w_max:g}" if w_max is not None else "")) if self.class_w else None
        self.name = f"cfg@{self.w_rule}" if self.w_rule else f"cfg@w={self.w:g}"
        self._eps = model_eps_fn(self.model, self.device)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "run_dir": str(self.run_dir),
            "checkpoint": self.checkpoint,
            "trained_steps": self.trained_steps,
            "w": self.w,
            "guidance_scale": guidance_scale(self.w),
            "w_per_class": self.class_w,
            "w_rule": self.w_rule,
            "sampler": self.sampler,
            "steps": self.steps,
        }

    def sample_batch(self, labels: torch.Tensor, seeds: list[int], w: float | torch.Tensor | None = None,
                     progress: Callable[[int, int], None] | None = None, should_stop: ShouldStop = None) -> torch.Tensor:
        """uint8 images for explicit labels and per-image seeds (one batch). With per-class w and
        no explicit ``w``, each image gets its class's w (one value per image)."""
        if w is None and self.class_w is not None:
            w = torch.tensor(self.class_w, dtype=torch.float32)[labels.cpu()]
        x = sample(self._eps, labels, seeds, (self.channels, self.image_size, self.image_size), self.null_label,
                   w=self.w if w is None else w, sampler=self.sampler, steps=self.steps, beta_schedule=self.beta_schedule,
                   device=self.device, progress=progress, should_stop=should_stop)
        return to_uint8(x)

    def generate(self, class_idx: int, n: int, seed: int = 0, progress: Progress = None, should_stop: ShouldStop = None) -> ImageSet:
        self.check_request(class_idx, n)
        out = []
        for lo in range(0, n, self.batch_size):
            if should_stop and should_stop():
                raise Cancelled("generation cancelled")
            hi = min(n, lo + self.batch_size)
            seeds = [image_seed(seed, class_idx, j) for j in range(lo, hi)]
            out.append(self.sample_batch(torch.full((hi - lo,), class_idx), seeds, should_stop=should_stop))
            if progress:
                progress(hi, n)
        return self.wrap(torch.cat(out), class_idx)

    def sweep(self, class_idx: int, ws: list[float], seeds: list[int], progress: Progress = None, should_stop: ShouldStop = None) -> torch.Tensor:
        """uint8 (len(ws), len(seeds), C, H, W): rows are w values, columns fixed seeds."""
        self.check_request(class_idx, 1)
        ws = [check_w(w) for w in ws]
        if not ws or not seeds:
            raise ConfigError("A guidance sweep needs at least one w and one seed.", "Pass e.g. ws=[0, 0.1, 1, 7.5] and seeds=[0, 1, 2, 3].")
        per_image_w = torch.tensor(ws, dtype=torch.float32).repeat_interleave(len(seeds))
        all_seeds = [int(s) for s in seeds] * len(ws)
        rows = []
        for lo in range(0, len(all_seeds), self.batch_size):  # each image keeps its seed: batching changes nothing
            hi = min(len(all_seeds), lo + self.batch_size)
            rows.append(self.sample_batch(torch.full((hi - lo,), class_idx), all_seeds[lo:hi], w=per_image_w[lo:hi], should_stop=should_stop))
            if progress:
                progress(hi, len(all_seeds))
        return torch.cat(rows).view(len(ws), len(seeds), self.channels, self.image_size, self.image_size)


def guidance_sweep(run_dir, class_idx: int, ws: list[float], seeds: list[int], sampler: str = "dpm", steps: int = 25,
                   device: str | None = None, should_stop: ShouldStop = None, progress: Progress = None) -> torch.Tensor:
    """The teaching view of guidance: uint8 (len(ws), len(seeds), C, H, W) for one class.

    Rows are the paper's w values, columns fixed seeds; the same seed in every row
    starts from the same noise, so a column shows what w alone changes.
    """
    gen = CFGGenerator(run_dir, w=0.0, sampler=sampler, steps=steps, device=device)
    return gen.sweep(class_idx, ws, seeds, progress=progress, should_stop=should_stop)


def save_samples(imageset: ImageSet, out_dir: str | os.PathLike, params: dict[str, Any], seeds: list[int] | None = None) -> Path:
    """Write one PNG per image (``<out>/<class>/<j>.png``) plus ``samples.npz`` and ``params.json``.

    ``samples.npz`` holds images uint8 (N,C,H,W), labels, seeds (-1 if unknown),
    provenance and class names as plain arrays (``np.load`` needs no pickle).
    Works for any generator's ImageSet.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds_arr = np.asarray(seeds if seeds is not None else [-1] * len(imageset), dtype=np.int64)
    if len(seeds_arr) != len(imageset):
        raise ValueError("one seed per image is required")
    counters: dict[int, int] = {}
    files = []
    for i in range(len(imageset)):
        c = int(imageset.labels[i])
        j = counters.get(c, 0)
        counters[c] = j + 1
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in imageset.classes[c])
        name = f"{j:05d}" + (f"_seed{int(seeds_arr[i])}" if seeds_arr[i] >= 0 else "") + ".png"
        files.append(str(save_png(imageset.images[i], out / f"{c:03d}_{safe}" / name).relative_to(out)))

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                images=imageset.images.numpy(),
                labels=imageset.labels.numpy(),
                seeds=seeds_arr,
                provenance=np.asarray([str(p) for p in imageset.provenance], dtype=str),
                classes=np.asarray(imageset.classes, dtype=str),
                files=np.asarray(files, dtype=str),
            )

    atomic_write(out / "samples.npz", write_npz)
    atomic_write_json(out / "params.json", {**params, "count": len(imageset), "counts": imageset.counts()})
    return out


def load_samples(path: str | os.PathLike) -> tuple[ImageSet, np.ndarray]:
    """(ImageSet, seeds) back from a ``samples.npz`` written by :func:`save_samples`."""
    with np.load(Path(path), allow_pickle=False) as z:
        s = ImageSet(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), [str(c) for c in z["classes"]],
                     provenance=np.asarray(z["provenance"].tolist(), dtype=object))
        return s, z["seeds"]


__all__ = ["CFGGenerator", "guidance_sweep", "save_samples", "load_samples", "load_model", "find_checkpoint"]
