"""The job kinds the app can launch, each a thin adapter from a run folder to a core function.

    cfg               core.train.cfg_unet.train_cfg
    classifier        core.train.classifier.train_classifier on a saved balanced set, or on the
                      imbalanced split filled here by core.generators.balance (balance_method/balance_params)
    generate          a generator's images per class -> images/, generated.npz, params.json
    balance           core.generators.balance.balance -> balanced.npz (a classifier job can train on it)
    guidance          core.generators.cfg.guidance_sweep (+ judge consistency/diversity, near-copy rate
                      and precision/recall vs held-out real images over w)
    trajectory        core.diffusion.trajectory.trajectory: one image's denoising steps per w -> trajectory.npz
    study             core.study.run.run_study

Importing this module registers every kind with the job manager
(:func:`core.jobs.register_runner`); whoever builds a ``JobManager`` for real work imports
it first. Heavy modules are imported inside each runner, so a missing optional dependency
fails only its own job with a clear message.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from core.store.atomic import atomic_write, atomic_write_json
from core.data.imageset import ImageSet
from core.errors import ConfigError, DataError
from core.jobs import JobContext, register_interactive, register_runner

# Job kind = the run kind its training loop writes into config.json (the loops refuse a
# folder of another kind), so these must match core.train.cfg_unet.KIND / core.train.classifier.KIND.
CFG_KIND = "cfg"
CLS_KIND = "classifier"
GENERATED = "generated.npz"
BALANCED = "balanced.npz"
SWEEP = "sweep.npy"
TRAJECTORY = "trajectory.npz"


# ------------------------------------------------------------------ image sets on disk
def save_imageset(path: str | Path, s: ImageSet) -> Path:
    """An ImageSet as one .npz (no pickles: provenance and classes are fixed-width strings)."""
    arrays = {
        "images": s.images.numpy(),
        "labels": s.labels.numpy(),
        "provenance": np.asarray(s.provenance, dtype=str),
        "classes": np.asarray(s.classes, dtype=str),
    }
    if s.soft_labels is not None:
        arrays["soft_labels"] = s.soft_labels.numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def load_imageset(path: str | Path) -> ImageSet:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} is missing.", "Re-run the job that made it; its run folder may have been removed.")
    with np.load(path, allow_pickle=False) as z:
        return ImageSet(
            images=torch.from_numpy(z["images"]),
            labels=torch.from_numpy(z["labels"]),
            classes=[str(c) for c in z["classes"]],
            provenance=z["provenance"].astype(object),
            soft_labels=torch.from_numpy(z["soft_labels"]) if "soft_labels" in z else None,
        )


def _png(img: torch.Tensor) -> bytes:
    from PIL import Image

    arr = img.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def export_zip(run_path: str | Path) -> bytes:
    """The generated images of a generate/balance run as a zip: <class>/<i>.png + params.json."""
    run_path = Path(run_path)
    src = run_path / GENERATED if (run_path / GENERATED).exists() else run_path / BALANCED
    s = load_imageset(src)
    params = json.loads((run_path / "params.json").read_text()) if (run_path / "params.json").exists() else {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("params.json", json.dumps(params, indent=2, default=str))
        counters: dict[int, int] = {}
        for i in range(len(s)):
            if s.provenance[i] == "real":
                continue
            c = int(s.labels[i])
            j = counters.get(c, 0)
            counters[c] = j + 1
            zf.writestr(f"{c:02d}_{_safe(s.classes[c])}/{j:05d}.png", _png(s.images[i]))
    return buf.getvalue()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)[:40] or "class"


# ------------------------------------------------------------------------- helpers
def _strip(config: dict, *keys: str) -> dict:
    return {k: v for k, v in config.items() if k not in keys}


def _data(config: dict):
    from core.data.loading import DataConfig, prepare

    if "data" not in config:
        raise ConfigError("This job's config has no 'data' section.", "Launch it from the app or the CLI, which fill it in.")
    return prepare(DataConfig.from_dict(config["data"]))


def _generator(ctx: JobContext, train: ImageSet):
    from core.generators.registry import build_generator

    method = ctx.config.get("method", "mixup")
    params = dict(ctx.config.get("params") or {})
    if method in ("cfg", "sd") and ctx.device and not params.get("device"):
        params["device"] = ctx.device
    return build_generator(method, train, **params)


def _progress2(ctx: JobContext, message: str):
    return lambda done, total, *rest: ctx.progress(int(done), int(total), message)


# ------------------------------------------------------------------------- runners
def run_cfg_train(ctx: JobContext):
    from core.train.cfg_unet import CFGTrainConfig, train_cfg

    cfg = CFGTrainConfig.from_dict(ctx.config)
    if getattr(cfg, "device", None) in (None, "") and ctx.device:
        cfg.device = ctx.device
    # The manager already created the run folder (config.json), so the loop always opens it
    # in resume mode; with no checkpoint yet it starts from step 0.
    train_cfg(cfg, ctx.run.path, callbacks=ctx.callbacks, resume=True)
    return None


def run_classifier_train(ctx: JobContext):
    from core.generators.balance import balanced_train_set, train_set_info
    from core.train.classifier import ClassifierConfig, train_classifier

    config = ctx.config
    method, params = config.get("balance_method") or "none", dict(config.get("balance_params") or {})
    info = train_set_info(method, params, config.get("balance_target"))
    cfg = ClassifierConfig.from_dict(_strip(config, "train_set_run", *info))
    # Store every field (defaults included): the loop refuses to resume a folder whose saved
    # config differs from the one it is given.
    atomic_write_json(ctx.run.path / "config.json", {**ctx.run.config, **cfg.to_dict(), **info})
    if getattr(cfg, "device", None) in (None, "") and ctx.device:
        cfg.device = ctx.device
    ds = None
    if config.get("train_set_run"):
        info["train_set_run"] = config["train_set_run"]
        train_set = load_imageset(ctx.run.path.parent / config["train_set_run"] / BALANCED)
    else:  # the loop takes a ready set: fill the imbalanced split here
        ds, imbalanced = _data(config)
        train_set = balanced_train_set(imbalanced, method, params, info["balance_target"], seed=cfg.seed,
                                       progress=_progress2(ctx, f"generating {method} images"), should_stop=ctx.should_stop)
    result = train_classifier(cfg, ctx.run.path, callbacks=ctx.callbacks, resume=True, train_set=train_set, dataset=ds, train_set_info=info)
    return {k: result[k] for k in ("accuracy", "macro_f1", "balanced_accuracy", "minority_f1") if isinstance(result, dict) and k in result}


def run_generate(ctx: JobContext):
    ds, train = _data(ctx.config)
    gen = _generator(ctx, train)
    classes = [int(c) for c in ctx.config.get("classes") or []]
    count, seed = int(ctx.config.get("count", 8)), int(ctx.config.get("seed", 0))
    if not classes:
        raise ConfigError("No classes were chosen.", "Pick at least one class to generate.")
    total, parts = len(classes) * count, []
    ctx.progress(0, total, f"generating with {gen.name}")
    for k, c in enumerate(classes):
        base = k * count

        def prog(done, n, *rest, base=base, c=c):
            ctx.progress(base + int(done), total, f"class {train.classes[c]}: {int(done)}/{count}")

        parts.append(gen.generate(c, count, seed=seed, progress=prog, should_stop=ctx.should_stop))
        ctx.progress(base + count, total, f"class {train.classes[c]} done")
        if ctx.should_stop():
            return None
    out = ImageSet.concat(parts)
    save_imageset(ctx.run.path / GENERATED, out)
    params = {"generator": gen.describe(), "method": ctx.config.get("method"), "params": ctx.config.get("params"),
              "classes": classes, "class_names": [train.classes[c] for c in classes], "count": count, "seed": seed,
              "data": ctx.config.get("data")}
    atomic_write_json(ctx.run.path / "params.json", params)
    return {"images": len(out), "generator": gen.name}


def run_balance(ctx: JobContext):
    from core.generators.balance import balance, fill_plan

    ds, train = _data(ctx.config)
    gen = _generator(ctx, train)
    target = ctx.config.get("target")
    seed = int(ctx.config.get("seed", 0))
    plan = fill_plan(train.counts(), target)
    ctx.progress(0, max(1, sum(plan)), f"balancing with {gen.name}")
    out = balance(train, gen, target=target, seed=seed, progress=_progress2(ctx, f"balancing with {gen.name}"), should_stop=ctx.should_stop)
    save_imageset(ctx.run.path / BALANCED, out)
    atomic_write_json(ctx.run.path / "params.json", {"generator": gen.describe(), "method": ctx.config.get("method"),
                                                      "params": ctx.config.get("params"), "target": target, "seed": seed,
                                                      "data": ctx.config.get("data"), "counts": out.counts_by_provenance()})
    return {"images": len(out), "added": int(sum(plan)), "generator": gen.name}


def _cfg_run_dir(ctx: JobContext) -> Path:
    """The CFG run a guidance or trajectory job samples from (a run id is relative to the runs folder)."""
    run_dir = Path(ctx.config["cfg_run"])
    if not run_dir.is_absolute():
        run_dir = ctx.run.path.parent / run_dir
    if not run_dir.exists():
        raise DataError(f"The CFG run {run_dir.name} no longer exists.", "Pick another trained CFG run.")
    return run_dir


def run_guidance(ctx: JobContext):
    from core.generators.cfg import guidance_sweep

    c = ctx.config
    run_dir = _cfg_run_dir(ctx)
    ws, seeds = [float(w) for w in c["ws"]], [int(s) for s in c["seeds"]]
    if not ws or not seeds:
        raise ConfigError("The guidance sweep needs at least one w and one seed.", "Enter e.g. w = 0, 1, 7.5 and seeds 0, 1, 2.")
    measure = int(c.get("measure_n") or 0)
    kw = dict(sampler=c.get("sampler", "dpm"), steps=int(c.get("steps", 25)), device=ctx.device, should_stop=ctx.should_stop)
    grid = guidance_sweep(run_dir, int(c["class_idx"]), ws, seeds, progress=_progress2(ctx, "sampling the grid"), **kw)
    np.save(ctx.run.path / SWEEP, grid.numpy())
    if measure > 0 and not ctx.should_stop():
        from core.data.loading import DataConfig
        from core.metrics.judge import class_consistency, diversity, get_judge

        big = guidance_sweep(run_dir, int(c["class_idx"]), ws, list(range(10_000, 10_000 + measure)),
                             progress=_progress2(ctx, f"sampling {measure} images per w for the curves"), **kw)
        ctx.progress(0, len(ws), "scoring with the judge")
        # a judge trained here (the first sweep on this data) stops at the job's Cancel too
        judge = get_judge(DataConfig.from_dict(c["data"]), device=ctx.device, progress=_progress2(ctx, "training the judge"),
                          should_stop=ctx.should_stop)
        novelty = _novelty_scorer(run_dir, c, ctx.device)
        for i, w in enumerate(ws):
            imgs = big[i]
            ctx.run.log_metrics({"w": w, "guidance_scale": 1 + w,
                                 "class_consistency": class_consistency(judge, imgs, int(c["class_idx"])),
                                 "diversity": diversity(judge, imgs), "n": len(imgs), **novelty(imgs)})
            ctx.progress(i + 1, len(ws), "scoring with the judge")
    return {"ws": ws, "seeds": seeds}


def _novelty_scorer(cfg_run: Path, config: dict, device):
    """images of one class -> near-copy rate (pixel space) and precision/recall vs held-out real
    images, against the data the CFG run was trained on (core.metrics.novelty)."""
    from core.store.atomic import read_json
    from core.data.loading import DataConfig
    from core.metrics.generation import get_extractor
    from core.metrics.novelty import fill_scores, held_out_split

    data = (read_json(cfg_run / "config.json") or {}).get("data") or config["data"]
    data_cfg = DataConfig.from_dict(data)
    c = int(config["class_idx"])
    train, held_out, _ = held_out_split(data_cfg)
    train, held_out = train.of_class(c), held_out.of_class(c)
    extractor, _ = get_extractor("auto", data_cfg, device)

    def score(images: torch.Tensor) -> dict:
        gen = ImageSet(images, torch.full((len(images),), c), train.classes)
        out = fill_scores(gen, train, held_out, extractor)
        e = out["per_class"].get(train.classes[c], {})
        return {"near_copy_rate": out["near_copy_rate"], "precision": out["precision"], "recall": out["recall"],
                "median_nn_relative": out["median_nn_relative"], "heldout_rate": out["heldout_rate"],
                "n_train": e.get("n_train"), "n_held_out": e.get("n_held_out"), "features": out["extractor"]}

    return score


def save_trajectory(path: str | Path, traj: dict) -> Path:
    """A trajectory (core.diffusion.trajectory.trajectory's tensors) as one .npz, atomically."""
    arrays = {k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in traj.items()}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def load_trajectory(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} is missing.", "Compute the trajectory again; its run folder may have been removed.")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def run_trajectory(ctx: JobContext):
    """One image's denoising trajectory for 1-3 values of w, saved to trajectory.npz (computed
    once; the Guidance page's denoising view only displays it)."""
    c = ctx.config
    run_dir = _cfg_run_dir(ctx)
    ws = [float(w) for w in c.get("ws") or []]
    if not 1 <= len(ws) <= TRAJECTORY_MAX_WS:
        raise ConfigError(f"The denoising view compares 1 to {TRAJECTORY_MAX_WS} values of w, got {len(ws)}.", "Enter two or three, e.g. 0, 2, 7.5.")
    ctx.progress(0, int(c.get("steps", 25)), "denoising")
    traj, _, _ = run_trajectory_of(run_dir, int(c["class_idx"]), ws, seed=int(c.get("seed", 0)), sampler=c.get("sampler", "dpm"),
                                   steps=int(c.get("steps", 25)), device=ctx.device, progress=_progress2(ctx, "denoising"),
                                   should_stop=ctx.should_stop)
    save_trajectory(ctx.run.path / TRAJECTORY, traj)
    return {"ws": ws, "steps": int(len(traj["timesteps"]))}


def run_trajectory_of(run_dir, class_spec: int | str, ws: list[float], seed: int = 0, sampler: str = "dpm", steps: int = 25,
                      device=None, checkpoint: str = "latest", progress=None, should_stop=None) -> tuple[dict, dict, int]:
    """(core.diffusion.trajectory.trajectory of a trained CFG run's EMA network, the checkpoint's config, the
    class index; ``class_spec`` is an index or a class name): the Guidance page's job and ``python -m core
    trajectory`` both call this."""
    from core.settings.device import resolve_device
    from core.diffusion.samplers import model_eps_fn
    from core.diffusion.trajectory import trajectory
    from core.generators.base import resolve_class
    from core.generators.cfg import load_model

    device = resolve_device(device)
    model, ck, _ = load_model(run_dir, checkpoint=checkpoint, device=device)
    c = resolve_class(class_spec, ck["classes"])
    size = int(ck["image_size"])
    traj = trajectory(model_eps_fn(model, device), c, int(seed), (int(ck["channels"]), size, size), int(ck["null_label"]),
                      ws, sampler=sampler, steps=steps, beta_schedule=ck.get("beta_schedule", "linear"), device=device,
                      progress=progress, should_stop=should_stop)
    return traj, ck, c


def run_study(ctx: JobContext):
    from core.study.config import StudyConfig
    from core.study.run import load_results
    from core.study.run import run_study as run_the_study

    # The run's config.json is the StudyConfig itself, so run_study's identity check
    # accepts this folder as the same study (and resumes it after a restart).
    cfg = StudyConfig.from_dict(ctx.config)
    if ctx.device and not cfg.device:
        cfg.device = ctx.device if ctx.device != "cpu" else None
    frame = run_the_study(cfg, ctx.run.path, callbacks=ctx.callbacks)
    res = load_results(ctx.run.path) or {}
    if res.get("state") == "failed":  # every row is written; the job still ends failed, as the study did
        from core.errors import TrainingError

        failed = (res.get("cells") or {}).get("failed", "some")
        raise TrainingError(f"The study finished with {failed} failed cell(s); the rows that could be computed were written.",
                            "See each failed row's errors on the Results page, fix the cause, then resume the study to re-run only the failed cells.")
    return {"rows": int(len(frame))}


# -------------------------------------------------------------- the interactive lane
# Short work that must not wait behind a training (core.jobs: the training pauses between
# steps while it runs). Stated limits: any Mixup/CutMix/oversample preview (no network);
# a CFG or SD preview of at most PREVIEW_MAX images in all; a guidance sweep whose grid
# holds at most SWEEP_GRID_MAX images and whose curves sample at most SWEEP_MEASURE_MAX;
# a denoising trajectory of at most TRAJECTORY_MAX_WS values of w and TRAJECTORY_MAX_STEPS steps.
PREVIEW_MAX = 64
SWEEP_GRID_MAX = 64
SWEEP_MEASURE_MAX = 128
TRAJECTORY_MAX_WS, TRAJECTORY_MAX_STEPS = 3, 100  # a denoising trajectory: at most 3 columns of w, 100 sampler steps


def generate_is_interactive(config: dict) -> bool:
    if config.get("method") in ("mixup", "cutmix", "oversample"):
        return True
    return len(config.get("classes") or []) * int(config.get("count", 8)) <= PREVIEW_MAX


def guidance_is_interactive(config: dict) -> bool:
    ws, seeds = config.get("ws") or [], config.get("seeds") or []
    return len(ws) * len(seeds) <= SWEEP_GRID_MAX and int(config.get("measure_n") or 0) * len(ws) <= SWEEP_MEASURE_MAX


register_interactive("generate", generate_is_interactive)
register_interactive("guidance", guidance_is_interactive)
register_interactive("trajectory", lambda c: len(c.get("ws") or []) <= TRAJECTORY_MAX_WS and int(c.get("steps", 25)) <= TRAJECTORY_MAX_STEPS)


DEFAULT_RUNNERS = {
    CFG_KIND: run_cfg_train,
    CLS_KIND: run_classifier_train,
    "generate": run_generate,
    "balance": run_balance,
    "guidance": run_guidance,
    "trajectory": run_trajectory,
    "study": run_study,
}

for _kind, _fn in DEFAULT_RUNNERS.items():
    register_runner(_kind, _fn)
