"""``python -m core report``: one study as a self-contained HTML file you can send."""

from __future__ import annotations

from core.commands.data_flags import add_json_argument
from core.commands.config_file import add_config_argument

HELP = "Write a study's report as one self-contained HTML file (every chart, the tables, the config, commit and versions; opens offline)."


def add_arguments(p) -> None:
    p.add_argument("study", help="the study folder (what `python -m core experiment --out` was given)")
    p.add_argument("--html", default=None, metavar="FILE", help="where to write the report (default: STUDY/report.html; an existing report is replaced)")
    add_json_argument(p, "what was written (html, bytes)")
    add_config_argument(p)


def run(args) -> int:
    from pathlib import Path

    from core.study.report import write_html

    out = Path(args.html) if args.html else Path(args.study) / "report.html"
    path = write_html(args.study, out)
    if args.json:
        import json

        print(json.dumps({"html": str(path), "bytes": path.stat().st_size}))
        return 0
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    from core.store.tracking import add_artifact

    if add_artifact(args.study, path):  # a study tracked with MLflow: the report joins its artefacts
        print("added it to the study's MLflow run")
    return 0
