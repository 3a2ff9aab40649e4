"""``python -m core export``: a trained CFG generator as a diffusers pipeline folder (unet/, scheduler/, pipeline.py, model_index.json, classes.json, README.md)."""

from __future__ import annotations

from core.commands.data_flags import add_json_argument
from core.commands.config_file import add_config_argument

HELP = ("Export a trained CFG run's EMA UNet as a diffusers pipeline folder: unet/, scheduler/, pipeline.py, model_index.json "
        "(DiffusionPipeline.from_pretrained(OUT, custom_pipeline='pipeline', trust_remote_code=True)), classes.json and a model card README.md.")
WRITTEN = "unet/, scheduler/, pipeline.py, model_index.json, classes.json, README.md (model card)"


def add_arguments(p) -> None:
    p.add_argument("--run", default=None, help="run folder made by `python -m core train-cfg` (or one of its checkpoint folders; required)")
    p.add_argument("--checkpoint", default="latest", choices=["latest", "best"], help="which checkpoint of the run to export")
    p.add_argument("--out", default=None, help=f"folder to write (required): {WRITTEN}")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it already holds files")
    add_json_argument(p, "what was written (run, checkpoint, out)")
    add_config_argument(p)


def run(args) -> int:
    import json

    from core.errors import ConfigError
    from core.generators.export import export_generator

    for flag in ("run", "out"):
        if not getattr(args, flag):
            raise ConfigError(f"--{flag} is missing.", f"Pass --{flag} (or a --config file that names it).")
    out = export_generator(args.run, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"run": str(args.run), "checkpoint": args.checkpoint, "out": str(out)}))
        return 0
    print(f"exported {args.run} ({args.checkpoint}, EMA weights) -> {out}: {WRITTEN}")
    return 0
