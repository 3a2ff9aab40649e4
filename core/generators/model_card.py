"""The model card (README.md) of an exported CFG generator: what it was trained on, how long, how
to sample it, the guidance convention, and the study's generator-gate figures when it came from one."""

from __future__ import annotations

from pathlib import Path

from core.store.atomic import read_json


def gate_rows(run_folder: Path) -> list[dict]:
    """The CFG rows' gate figures of the study this run belongs to (``<study>/cfg/seed<k>``), if any."""
    for folder in (run_folder.parent, run_folder.parent.parent):
        results = read_json(folder / "results.json")
        if isinstance(results, dict) and isinstance(results.get("rows"), list):
            return [r for r in results["rows"] if r.get("fill") == "cfg" and isinstance(r.get("gate"), dict)]
    return []


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(run_folder: Path, ckpt: dict, state: dict, pipeline_class: str, default_steps: int) -> str:
    """Markdown with a Hugging Face front matter; ``ckpt`` is the checkpoint's config, ``state`` its state."""
    run_cfg = read_json(run_folder / "config.json", {}) or {}
    data = run_cfg.get("data") or {}
    classes, counts = list(ckpt["classes"]), ckpt.get("train_counts") or []
    train = ckpt.get("train") or {}
    prov = run_cfg.get("provenance") or {}
    lines = ["---", "library_name: diffusers", "pipeline_tag: unconditional-image-generation",
             "tags: [imbalance-lab, classifier-free-guidance, class-conditional, ddpm]", "---", "",
             f"# Class-conditional CFG diffusion model ({data.get('dataset', 'unknown data')}, {data.get('profile', 'unknown profile')} profile)", "",
             "Exported by Imbalance Lab (`python -m core export`): the EMA weights of a class-conditional DDPM with",
             "classifier-free guidance, trained on an imbalanced training set to fill its minority classes.", "",
             "## Data", "",
             f"- dataset: `{data.get('dataset', 'unknown')}`; imbalance profile: `{data.get('profile', 'unknown')}`"
             + (f" (ratio {data['ratio']})" if data.get("ratio") else ""),
             f"- images: {ckpt['channels']} channel(s), {ckpt['image_size']}×{ckpt['image_size']} pixels, in [-1, 1]",
             "", "| label | class | training images |", "|---:|---|---:|"]
    lines += [f"| {i} | {c} | {counts[i] if i < len(counts) else 'n/a'} |" for i, c in enumerate(classes)]
    lines += ["", "## Training", "",
              f"- steps trained: {int(state.get('step', 0))}" + (f" of {train['steps']}" if train.get("steps") else ""),
              f"- network: diffusers `UNet2DModel` with {len(classes) + 1} class embeddings (label {len(classes)} is the null label)",
              f"- noise schedule: {ckpt.get('beta_schedule', 'linear')} betas, 1000 training timesteps",
              f"- code: commit {prov.get('commit') or 'unknown'}" + (" (uncommitted changes)" if prov.get("dirty") else ""),
              "", "## Guidance convention (w)", "",
              "ε̃ = (1 + w)·ε(x, c) − w·ε(x, ∅), the paper's w: **w = 0 is plain conditional sampling**, and diffusers'",
              "`guidance_scale` is 1 + w (the pipeline takes either). The paper samples at w = 0.1 and w = 7.5.", "",
              "## Sampling", "",
              f"The folder holds a custom pipeline (`pipeline.py`, class `{pipeline_class}`); it needs torch and diffusers only.",
              f"Default sampler: DPM-Solver++(2M) with dynamic thresholding, {default_steps} steps (`scheduler/`).", "",
              "```python", "from diffusers import DiffusionPipeline",
              'pipe = DiffusionPipeline.from_pretrained("THIS_FOLDER", custom_pipeline="pipeline", trust_remote_code=True)',
              "images = pipe(class_labels=[0, 0, 1], w=7.5, seeds=[0, 1, 2], num_inference_steps="
              f"{default_steps}).images  # PIL; output_type='raw' gives the [-1, 1] tensor",
              "```", "", "Seed s draws image s's noise from `torch.Generator('cpu').manual_seed(s)`, as the lab does: the same",
              "class, w, seed and steps give the lab's own sample.", "", "## Generator gate", ""]
    gates = gate_rows(run_folder)
    if gates:
        lines += ["From the study this model was trained in (thresholds: the study's `[gate]`):", "",
                  "| row | passed | tail consistency | precision | near-copy rate |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r.get('method')} / {r.get('classifier')} | {_fmt(r['gate'].get('passed'))} | {_fmt(r['gate'].get('tail_consistency'))} "
                  f"| {_fmt(r['gate'].get('precision'))} | {_fmt(r['gate'].get('near_copy_rate'))} |" for r in gates]
    else:
        lines += ["Not measured: this run was not part of a study. A study (`python -m core experiment`) measures whether the",
                  "generated tail images are of their class, precise, and not near-copies of the training images."]
    return "\n".join(lines) + "\n"
