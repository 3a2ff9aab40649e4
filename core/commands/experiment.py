"""``python -m core experiment``: run (or resume) a whole study from a preset or a TOML file."""

from __future__ import annotations

import json
import sys

HELP = "Run a study (methods × classifiers × seeds) from --preset or --config and write results.csv/results.json."


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["quick", "paper"], help="quick: digits on CPU (~10 min on 2 cores); paper: CIFAR-10, ResNet18/50, for a GPU")
    src.add_argument("--config", help="a study TOML file (see studies/quick.toml)")
    p.add_argument("--out", required=True, help="study folder; rerunning on the same folder resumes it (finished cells are skipped)")
    p.add_argument("--data-dir", default=None, help="override [data] data_dir (e.g. an ImageFolder copy of CIFAR-10)")
    p.add_argument("--seeds", default=None, help="override the seeds, comma-separated (e.g. 0,1)")
    p.add_argument("--epochs", type=int, default=None, help="override the classifier epochs")
    p.add_argument("--methods", default=None, help="override the methods, comma-separated (none,oversample,mixup,cutmix,cfg,sd)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]} as one JSON object on stdout (progress goes to stderr)')


def run(args) -> int:
    from core.callbacks import Callbacks
    from core.errors import ConfigError
    from core.experiment import StudyConfig, load_results, preset, run_study

    cfg = preset(args.preset) if args.preset else StudyConfig.from_toml(args.config)
    d = cfg.to_dict()
    if args.data_dir:
        d["data"]["data_dir"] = args.data_dir
    if args.seeds:
        try:
            d["seeds"] = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--seeds '{args.seeds}' is not a comma-separated list of integers.", "Pass e.g. --seeds 0,1.")
    if args.epochs is not None:
        d["classifier"]["epochs"] = args.epochs
    if args.methods:
        d["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.device:
        d["device"] = args.device
    cfg = StudyConfig.from_dict(d)

    def progress(done, total, msg=""):
        print(f"[{done}/{total} cells] {msg}", file=sys.stderr, flush=True)

    frame = run_study(cfg, args.out, Callbacks(on_progress=progress))
    res = load_results(args.out)
    if args.json:
        print(json.dumps({"rows": res["rows"], "notes": res["notes"], "state": res["state"]}))
        return 0
    for note in res["notes"]:
        print(f"note: {note}")
    print(render_table(res["rows"]))
    print(f"\nresults: {args.out}/results.csv, {args.out}/results.json")
    return 0 if res["state"] == "done" else 1


def render_table(rows: list[dict]) -> str:
    """A markdown table of the rows (what BENCHMARKS.md holds)."""
    gen_key = next((k for r in rows for k in ("fid", "fd_judge") if r.get(k)), None)
    labels = {"fid": "FID", "fd_judge": "FD (judge CNN features)"}
    kid_label = next((r["kid"]["label"] for r in rows if r.get("kid")), "KID")
    head = ["method", "classifier", "seeds", "accuracy", "macro-F1", "minority-F1"]
    if gen_key:
        head += [labels[gen_key], "n_images", kid_label]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pm(x, scale=100.0, nd=1):
        return "–" if not x or x["mean"] is None else f"{x['mean'] * scale:.{nd}f} ± {x['std'] * scale:.{nd}f}"

    for r in rows:
        if r.get("skipped"):
            out.append(f"| {r['method']} | {r['classifier']} | – | skipped: {r['skipped'][:120]} |" + " |" * (len(head) - 4))
            continue
        cells = [r["method"], r["classifier"], ",".join(map(str, r["seeds"])), pm(r["accuracy"]), pm(r["macro_f1"]), pm(r["minority_f1"])]
        if gen_key:
            g = r.get(gen_key)
            cells += [pm(g, 1.0, 2), str(g["n_images"]) if g else "–", pm(r.get("kid"), 1.0, 4)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
