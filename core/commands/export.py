"""``python -m core export``: a trained CFG generator as a diffusers pipeline folder (core/export.py)."""

from __future__ import annotations

HELP = ("Export a trained CFG run's EMA UNet as a diffusers pipeline folder: unet/, scheduler/, pipeline.py, model_index.json "
        "(DiffusionPipeline.from_pretrained(OUT, custom_pipeline='pipeline', trust_remote_code=True)), classes.json and a model card README.md.")


def add_arguments(p) -> None:
    p.add_argument("--run", required=True, help="run folder made by `python -m core train-cfg` (or one of its checkpoint folders)")
    p.add_argument("--checkpoint", default="latest", choices=["latest", "best"], help="which checkpoint of the run to export")
    p.add_argument("--out", required=True, help="folder to write: unet/, scheduler/, pipeline.py, model_index.json, classes.json, README.md")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it already holds files")


def run(args) -> int:
    from core.export import export_generator

    out = export_generator(args.run, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite)
    print(f"exported {args.run} ({args.checkpoint}, EMA weights) -> {out}: unet/, scheduler/, pipeline.py, model_index.json, classes.json, README.md (model card)")
    return 0
