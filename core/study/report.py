"""A study as one self-contained HTML file you can send: every chart, the tables, the config, the provenance.

``build_html(study)`` reads a study folder (``experiment --out``) through ``core.study.tables`` (the same
tables as the Results page) and draws its charts with ``core.viz``. plotly.js is embedded once,
inline in the page's head, and every chart is a ``<div>`` drawn by it: the file opens offline, with
no request leaving it. Sections that depend on fields a study may not carry yet (the generator
gates, the budget curves) say "not recorded in this study" until its rows carry ``gate`` / ``curve``.
"""

from __future__ import annotations

import html
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.study import tables as report
from core.viz import figures as viz
from core.store.atomic import atomic_write, read_json
from core.errors import ConfigError
from core.study.gate import gate_reason, regate_words

NOT_RECORDED = "not recorded in this study"
# where a study may keep what made it (issue 18 item 3): top-level keys of config.json / results.json,
# or the same keys under "provenance"
PROVENANCE_KEYS = ("commit", "dirty", "versions", "device", "command", "page", "argv")
NOVELTY = ("near_copy_rate", "precision", "recall")


def _load(study: Path) -> tuple[dict, dict]:
    cfg = read_json(study / "config.json")
    if not cfg or cfg.get("kind") != "study":
        raise ConfigError(f"{study} is not a study folder (no config.json of kind 'study').",
                          "Pass the folder given to `python -m core experiment --out`.")
    res = read_json(study / "results.json")
    if not res:
        raise ConfigError(f"{study} has no results.json yet: the study has not finished.",
                          f"Wait for it to finish, or resume it with `python -m core experiment ... --out {study}`.")
    return cfg, res


def provenance(cfg: dict, res: dict) -> dict:
    """The commit, versions, device and command the study recorded (config.json first, then results.json)."""
    out = {}
    for src in (cfg, cfg.get("provenance") or {}, res, res.get("provenance") or {}):
        for k in PROVENANCE_KEYS:
            if k in src and k not in out:
                out[k] = src[k]
    return out


# ------------------------------------------------------------------------------ charts
def _titled(fig: go.Figure, title: str) -> tuple[str, go.Figure]:
    return title, fig


def charts(study: str | os.PathLike) -> list[tuple[str, go.Figure]]:
    """(title, figure) for every chart of the study, in the order the report shows them."""
    _, res = _load(Path(study))
    return _charts(report.one_study(study), res.get("rows") or [])


def _charts(t: dict[str, pd.DataFrame], raw: list[dict]) -> list[tuple[str, go.Figure]]:
    rows, cls, gen = t["rows"], t["classifiers"], t["generation"]
    out = []
    if not rows.empty:
        labelled = rows.assign(label=rows["method"].astype(str))
        out.append(_titled(viz.ci_bars(labelled, "accuracy", scale=100), "Test accuracy (%) per method; bars: 95% CI over seeds"))
        out.append(_titled(viz.ci_bars(labelled, "macro_f1"), "Macro-F1 per method; bars: 95% CI over seeds"))
        if rows["minority_f1_mean"].notna().any():
            out.append(_titled(viz.ci_bars(labelled, "minority_f1"), "Minority-class F1 per method; bars: 95% CI over seeds"))
    classes = next((c for c in cls["classes"] if c), None) if not cls.empty else None
    if not cls.empty:
        classes = classes or [str(i) for i in range(len(next((p for p in cls["per_class_f1"] if p), [])))]
        for arch in sorted(cls["classifier"].dropna().unique()):
            sub = cls[cls["classifier"] == arch]
            counts = next((c for c in sub.get("imbalanced_counts", []) if c and len(c) == len(classes)), None)
            out.append(_titled(viz.per_class_f1_heatmap(report.per_class_long(sub), classes, counts),
                               f"Per-class F1 of every method, {arch} (mean over seeds), minority classes first"))
        for (method, arch), g in cls.groupby(["method", "classifier"], sort=False):
            cms = [np.asarray(m) for m in g["confusion_matrix"] if m]
            if cms:
                out.append(_titled(viz.confusion_figure(np.sum(cms, axis=0), classes),
                                   f"Confusion matrix, {method} · {arch} (summed over {len(cms)} seed(s)); rows: true class"))
    for metric, g in gen.groupby("metric", sort=False):
        out.append(_titled(viz.metric_bars(g, "value", x="method", color=None),
                           f"{g['label'].iloc[0]} of (imbalanced + generated) vs the full train split, lower is better; bars: ±1 std over seeds"))
    if not gen.empty and gen["kid"].notna().any():
        kid = gen.dropna(subset=["kid"])
        out.append(_titled(viz.metric_bars(kid, "kid", x="method", color=None), f"{kid['kid_label'].iloc[0]}, lower is better"))
    nov = pd.DataFrame([{"method": r["method"], "metric": k, "value": r[k]["mean"]} for r in raw for k in NOVELTY
                        if isinstance(r.get(k), dict) and r[k].get("mean") is not None])
    if not nov.empty:
        nov = nov.drop_duplicates(["method", "metric"])  # a fill's figures repeat on each classifier's row
        out.append(_titled(viz.metric_bars(nov, "value", x="method", color="metric"),
                           "Generated images only: near-copy rate, precision and recall (shares of images)"))
    out += _curve_charts(raw)
    return out


def _curve_charts(raw: list[dict]) -> list[tuple[str, go.Figure]]:
    """Accuracy and minority-F1 against training steps, one line per method · classifier (rows' ``curve``)."""
    pts = report.study_curves(raw)
    out = []
    for metric in ("accuracy", "minority_f1"):
        if pts.empty or pts[metric].isna().all():
            continue
        out.append(_titled(viz.budget_curves(pts, metric), f"Budget curve: {metric} against training steps (mean over seeds)"))
    return out


# ------------------------------------------------------------------------------ tables
def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "<p class='none'>none</p>"
    return df.map(_fmt).to_html(index=False, escape=True, border=0, classes="t")


def results_table(raw: list[dict]) -> pd.DataFrame:
    rows = []
    for r in raw:
        acc = r.get("accuracy") or {}
        ci = acc.get("ci95")
        rows.append({"method": r.get("method"), "classifier": r.get("classifier"), "state": r.get("state"),
                     "seeds": r.get("n_seeds"), "steps": r.get("steps"), "images seen": r.get("images_seen"),
                     "train size": r.get("train_size"), "accuracy": acc.get("mean"),
                     "acc. 95% CI (seeds)": f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "—",
                     "± test set (Wilson 95%)": r.get("accuracy_binomial_hw95"),
                     "macro-F1": (r.get("macro_f1") or {}).get("mean"), "minority-F1": (r.get("minority_f1") or {}).get("mean"),
                     **{k.replace("share_of_gap_", "share of gap: "): v for k, v in report.share_of_gap_columns(r).items()},
                     "why": r.get("reason") or "; ".join(f"seed {k}: {str(e).splitlines()[0]}" for k, e in (r.get("errors") or {}).items())
                     or gate_reason(r.get("gate"))})
    return pd.DataFrame(rows)


def verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    """``core.study.tables.verdict_table`` plus any further figure the verdicts carry (p, p_holm, mde, ...)."""
    table = report.verdict_table(rows).drop(columns=["study"])
    extra = [{k: v for k, v in vs.items() if k not in ("metric", "diff_mean", "ci95", "verdict", "minority_f1")}
             for _, r in rows.iterrows() for _, vs in report.endpoint_entries(r.get("vs"))]
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1) if any(extra) else table


def gates(raw: list[dict]) -> pd.DataFrame:
    """One line per gated row (``seed`` "mean": the thresholds applied to the means over seeds),
    then one per seed of its fill (``per_seed``, core.study.gate); the thresholds are in each rule."""
    def line(r: dict, seed, g: dict) -> dict:
        rest = {k: (", ".join(map(str, v)) if isinstance(v, list) else str(v) if isinstance(v, dict) else v)
                for k, v in g.items() if k not in ("per_seed", "thresholds")}
        return {"method": r.get("method"), "classifier": r.get("classifier"), "state": r.get("state"), "seed": seed, **rest}

    out = []
    for r in raw:
        g = r.get("gate")
        if isinstance(g, dict):
            out.append(line(r, "mean" if g.get("per_seed") else "—", g))
            out += [line(r, s, sg) for s, sg in (g.get("per_seed") or {}).items() if isinstance(sg, dict)]
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------ the page
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table.t{border-collapse:collapse;font-size:13px;margin:.5em 0} table.t th,table.t td{border:1px solid #ddd;padding:3px 7px;text-align:left}
table.t th{background:#f4f4f4} .none{color:#888;font-style:italic} figure{margin:1.5em 0} figcaption{font-weight:600;margin-bottom:.3em}
.meta{color:#555} nav a{margin-right:1em} code{background:#f4f4f4;padding:0 3px}
"""


def _section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{anchor}'><h2>{html.escape(title)}</h2>{body}</section>"


def _figures(items: list[tuple[str, go.Figure]], start: int) -> str:
    parts = []
    for i, (title, fig) in enumerate(items, start):
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{i}", default_height="460px",
                          config={"displaylogo": False, "responsive": True})
        parts.append(f"<figure><figcaption>{html.escape(title)}</figcaption>{div}</figure>")
    return "".join(parts)


def build_html(study: str | os.PathLike) -> str:
    """The whole report as one HTML page (plotly.js inline, no external resource)."""
    from plotly.offline import get_plotlyjs

    study = Path(study)
    cfg, res = _load(study)
    raw = res.get("rows") or []
    t = report.one_study(study)
    all_charts = _charts(t, raw)
    curves = [c for c in all_charts if c[0].startswith("Budget curve")]
    main = [c for c in all_charts if c not in curves]
    name = res.get("study") or cfg.get("name") or study.name
    status = read_json(study / "status.json") or {}

    prov = provenance(cfg, res)
    versions = prov.pop("versions", None)
    prov_rows = [("commit", prov.pop("commit", "not recorded"))] + [(k, v) for k, v in prov.items()]
    prov_html = _table(pd.DataFrame(prov_rows, columns=["what", "value"]))
    prov_html += "<h3>Package versions</h3>" + (_table(pd.DataFrame(sorted(versions.items()), columns=["package", "version"]))
                                                 if isinstance(versions, dict) and versions else "<p class='none'>not recorded</p>")
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in res.get("notes") or [])
    gate_df = gates(raw)
    flat = report.flat_config({k: v for k, v in cfg.items() if k not in ("provenance", "versions")})
    config_df = pd.DataFrame([(k, "—" if v is None else str(v)) for k, v in flat.items()], columns=["setting", "value"])
    sections = [
        _section("provenance", "What made it", prov_html),
        _section("results", "Results per method × classifier", _table(results_table(raw)) + (f"<ul>{notes}</ul>" if notes else "")),
        _section("verdicts", "Verdicts against the references",
                 _table(verdicts(t["rows"])) + "<p class='meta'>Paired over the seeds both methods share. better/worse: the 95% CI "
                 "of the difference excludes 0; inconclusive means no difference was detected, not that the methods are equal.</p>"),
        _section("charts", "Charts", _figures(main, 1) if main else "<p class='none'>no finished rows to draw</p>"),
        _section("gates", "Generator gates", (_table(gate_df) if not gate_df.empty else f"<p class='none'>{NOT_RECORDED}</p>")
                 + "".join(f"<p class='meta'>Re-gated {html.escape(str(c.get('at', '')))}: {html.escape(regate_words(c))}</p>"
                           for c in cfg.get("regated") or [])),
        _section("curves", "Budget curves", _figures(curves, len(main) + 1) if curves else f"<p class='none'>{NOT_RECORDED}</p>"),
        _section("config", "Configuration", _table(config_df)),
    ]
    nav = "".join(f"<a href='#{a}'>{n}</a>" for a, n in (("provenance", "provenance"), ("results", "results"), ("verdicts", "verdicts"),
                                                          ("charts", "charts"), ("gates", "gates"), ("curves", "curves"), ("config", "config")))
    cells = res.get("cells") or {}
    meta = (f"state <b>{html.escape(str(res.get('state') or status.get('state') or '?'))}</b> · "
            f"{html.escape(', '.join(f'{v} {k}' for k, v in cells.items()))} cells · budget {html.escape(str(res.get('budget')))} · "
            f"test images {html.escape(str(res.get('test_size')))} · folder <code>{html.escape(study.name)}</code> · "
            f"report made {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Study report: {html.escape(str(name))}</title>"
            f"<style>{CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            f"<h1>Study: {html.escape(str(name))}</h1><p class='meta'>{meta}</p><nav>{nav}</nav>{''.join(sections)}</body></html>")


def write_html(study: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the report to ``out`` (atomically) and return its path."""
    text = build_html(study)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
