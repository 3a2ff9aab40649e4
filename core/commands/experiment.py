"""``python -m core experiment``: run (or resume) a whole study from a preset or a TOML file."""

from __future__ import annotations

import json
import sys

from core.commands.data_flags import add_tracking_argument, log_with
from core.commands.config_file import add_deprecated

STUDIES = ["quick", "cifar-cpu", "paper", "paper-smoke"]  # core.study.presets.PRESETS (not imported here: it pulls in torch)

HELP = "Run a study (methods × classifiers × seeds) from --study or --config and write results.csv/results.json."
PRESET_MESSAGE = ("--preset is deprecated in experiment and will be removed in the next release: it names a network size in train-cfg. "
                  "Use --study NAME for a built-in study.")


def _gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--study", dest="preset", choices=STUDIES,
                     help="quick: digits on CPU (≤ 15 min on 2 cores, 5 seeds, 2 lanes); cifar-cpu: CIFAR-10 at 8 px on 2 CPU cores, "
                          "the paper's question between none and real (≈ 57 min on 2 cores; needs --data-dir or the torchvision copy); "
                          "paper: CIFAR-10, ResNet18/50, for a GPU; paper-smoke: the paper's code path on CIFAR-10 with small numbers")
    add_deprecated(src, "--preset", "preset", PRESET_MESSAGE, choices=STUDIES)
    src.add_argument("--config", help="a study TOML file (see studies/quick.toml); the flags below override it")
    p.add_argument("--out", required=True, help="study folder; rerunning on the same folder resumes it (finished cells are skipped)")
    p.add_argument("--data-dir", default=None, help="override [data] data_dir (e.g. an ImageFolder copy of CIFAR-10)")
    p.add_argument("--seeds", default=None, help="override the seeds, comma-separated (e.g. 0,1)")
    p.add_argument("--epochs", type=int, default=None, help="override the classifier epochs")
    p.add_argument("--steps", type=int, default=None, help="override the classifier's optimizer steps (budget steps)")
    p.add_argument("--budget", choices=["steps", "epochs"], default=None,
                   help="steps: every method gets the same optimizer steps (default); epochs: the same epochs (the paper's protocol)")
    p.add_argument("--methods", default=None, help="override the methods, comma-separated (none,oversample,mixup,cutmix,cfg,sd,reweight,logit-adjust,posthoc-adjust,cfg+logit-adjust,...)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--devices", default=None,
                       help="run cells in parallel, one worker process per device: cuda (every GPU), cuda:0,cuda:1, or cpu,cpu (CPU lanes)")
    where.add_argument("--lanes", type=int, default=None, help="run cells in parallel on N CPU lanes, the cores split between them")
    where.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run cells as Ray tasks: a local instance, or the cluster at ADDRESS (needs `pip install ray`)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]} as one JSON object on stdout (progress goes to stderr)')
    add_tracking_argument(p)


def run(args) -> int:
    from core.store.atomic import read_json
    from core.callbacks import Callbacks, ProgressBar
    from core.errors import ConfigError
    from core.study.config import StudyConfig
    from core.study.run import load_results, run_study
    from core.study.presets import preset

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
    if getattr(args, "steps", None) is not None:
        d["classifier"]["steps"] = args.steps
    if getattr(args, "budget", None):
        d["budget"] = args.budget
    if args.methods:
        d["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.device:
        d["device"] = args.device
    saved = read_json(f"{args.out}/config.json") or {}
    # every CFG and classifier training of the study logs to the tracker; without --log-with, as the study was made
    tracker = log_with(args) if args.log_with is not None else (saved.get("classifier") or {}).get("log_with") if saved.get("kind") == "study" else None
    if tracker is not None:
        d["classifier"] = {**d["classifier"], "log_with": tracker}
        d["cfg_train"] = {**d["cfg_train"], "log_with": tracker}
    cfg = StudyConfig.from_dict(d)
    bar = ProgressBar("experiment", unit="cell", disable=args.verbosity < 0)

    def progress(done, total, msg=""):
        bar(done, total, msg)
        if args.verbosity > 0:
            bar.write(f"[{done}/{total} cells] {msg}", file=sys.stderr)

    from core.study.executors import executor_for

    lanes = args.lanes
    if lanes is None and not args.devices and args.ray is None and cfg.cpu_lanes and not _gpu_visible():
        lanes = cfg.cpu_lanes  # the study's own default (the quick preset: 2 lanes on a 2-core CPU)
    executor = executor_for(args.devices, lanes, args.ray)
    if executor is not None:
        print(f"cells run on: {executor.device}", file=sys.stderr, flush=True)
    try:
        run_study(cfg, args.out, Callbacks(on_progress=progress), executor=executor)
    finally:
        bar.close()
        if hasattr(executor, "shutdown"):
            executor.shutdown()
    res = load_results(args.out)
    # every row is written before the exit status says the study had failed (or cancelled) cells
    code = 0 if res["state"] == "done" else 1
    if args.json:
        print(json.dumps({k: res[k] for k in ("study", "budget", "state", "cells", "test_size", "rows", "notes")}))
        return code
    for note in res["notes"]:
        print(f"note: {note}")
    print(render_table(res["rows"]))
    for line in below_gate_lines(res["rows"]):
        print(line)
    print(f"\nresults: {args.out}/results.csv, {args.out}/results.json")
    if code:
        print(f"study {res['state']}: {res['cells']}", file=sys.stderr)
    return code


def _ci(x: dict | None, scale: float = 100.0) -> str:
    if not x or x.get("ci95") is None:
        return "–"
    lo, hi = x["ci95"]
    return f"[{lo * scale:.1f}, {hi * scale:.1f}]"


def _pm(x: dict | None, scale: float = 100.0, nd: int = 1) -> str:
    if not x or x.get("mean") is None:
        return "–"
    return f"{x['mean'] * scale:.{nd}f}" + (f" ± {x['std'] * scale:.{nd}f}" if x.get("std") is not None else "")


def below_gate_lines(rows: list[dict]) -> list[str]:
    """One line per below_gate row: trained on a generator fill that failed its gate (core.study.gate),
    shown with its figures but no verdict. Not a failure: the study still ends done (exit 0)."""
    from core.study.gate import BELOW_GATE, gate_reason

    low = [r for r in rows if r.get("state") == BELOW_GATE]
    if not low:
        return []
    return ([f"\n{len(low)} row(s) below the generator gate (figures shown, no verdict; not a failure):"]
            + [f"  {r['method']} · {r['classifier']}: {gate_reason(r.get('gate'))} ({(r.get('gate') or {}).get('rule')})" for r in low])


def _gate_cell(r: dict) -> str:
    """✓ / ✗ and the gate's three figures (tail consistency / precision / tail near-copy rate)."""
    from core.study.gate import gate_symbol

    g = r.get("gate")
    if not isinstance(g, dict):
        return "–"
    figs = "/".join("–" if g.get(k) is None else f"{g[k]:.2f}" for k in ("tail_consistency", "precision", "near_copy_rate"))
    real = "" if g.get("real_tail_consistency") is None else (
        f" (real {g['real_tail_consistency']:.2f}/" + ("–" if g.get("real_precision") is None else f"{g['real_precision']:.2f}") + ")")
    return f"{gate_symbol(g)} {figs}{real}"


def render_table(rows: list[dict]) -> str:
    """A markdown table of the rows (what BENCHMARKS.md holds): mean ± std over seeds, the
    Student-t 95 % CI, the paired verdicts against every reference, steps and images seen."""
    from core.study.stats import describe_verdict

    gen_key = next((k for r in rows for k in ("fid", "fd_judge") if r.get(k)), None)
    labels = {"fid": "FID", "fd_judge": "FD (judge CNN features)"}
    order = [r["method"] for r in rows]
    refs = sorted({ref for r in rows for ref in r.get("vs", {})}, key=order.index)
    head = ["method", "classifier", "state", "seeds", "steps", "images seen", "train size", "accuracy", "acc. 95% CI", "± test (binomial)",
            "macro-F1", "minority-F1"] + [h for ref in refs for h in (f"vs {ref} (Δacc, verdict)", f"vs {ref} (Δminority F1, verdict)")]
    if gen_key:
        head += [labels[gen_key]]
    gap = any(r.get("share_of_gap") or r.get("real_images") for r in rows)
    if gap:
        head += ["share of gap (acc.)", "share of gap (minority F1)"]
    gated = any(isinstance(r.get("gate"), dict) for r in rows)
    if gated:
        head += ["gate (tail cons./prec./tail copies)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["state"] in ("failed", "unavailable", "cancelled") and not r["n_seeds"]:
            why = r.get("reason") or "; ".join(f"seed {s}: {e.splitlines()[0]}" for s, e in r.get("errors", {}).items())
            out.append(f"| {r['method']} | {r['classifier']} | {r['state']}: {why[:140]} |" + " |" * (len(head) - 3))
            continue
        hw = r.get("accuracy_binomial_hw95")
        cells = [r["method"], r["classifier"], r["state"], str(r["n_seeds"]), str(r["steps"]), str(r["images_seen"]), str(r["train_size"]),
                 _pm(r["accuracy"]), _ci(r["accuracy"]), f"± {hw * 100:.1f}" if hw is not None else "–", _pm(r["macro_f1"]), _pm(r["minority_f1"])]
        for ref in refs:
            c = r.get("vs", {}).get(ref)
            cells.append("–" if not c or c["diff_mean"] is None else f"{c['diff_mean'] * 100:+.1f} {_ci({'ci95': c['ci95']})} {describe_verdict(c)}")
            mf = (c or {}).get("minority_f1") or {}
            ci = f" [{mf['ci95'][0]:+.3f}, {mf['ci95'][1]:+.3f}]" if mf.get("ci95") else ""
            cells.append("–" if mf.get("diff_mean") is None else f"{mf['diff_mean']:+.3f}{ci} {describe_verdict(mf)}")
        if gen_key:
            cells.append(_pm(r.get(gen_key), 1.0, 2))
        if gap:
            from core.study.tables import share_of_gap_columns

            cells += list(share_of_gap_columns(r).values())
        if gated:
            cells.append(_gate_cell(r))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
