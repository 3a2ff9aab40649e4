"""Results page: the runs table, generation metrics, accuracy / F1 by method and classifier (marked when
the runs compared differ in compute), per-class F1 of every method, two runs' confusion matrices and their difference."""

from __future__ import annotations


import pandas as pd
import streamlit as st

from core.study import tables as report
from core.viz import figures as viz
from core.store.provenance import summary_row
from core.paths import runs_dir
from core.store.runs import Run, runs_table
from app_pages._jobs import visible_runs
from app_pages._manager import manager
from app_pages._identity import strict
from app_pages._export import chart_config

def group_table(groups: pd.DataFrame, cd: pd.DataFrame) -> pd.DataFrame:
    """The groups as a readable table: mean ± std only for several seeds of one setting, the CI, steps."""
    from core.study.stats import binomial_halfwidth

    rows = []
    for _, g in groups.iterrows():
        test_n = cd[cd["run_id"].isin(g["runs"])]["test_n"].dropna()
        acc = g["accuracy_mean"]
        half = binomial_halfwidth(acc, int(test_n.iloc[0])) if len(test_n) and acc is not None else None
        row = {"setting": g["label"], "n runs": g["n"], "seeds": ", ".join(map(str, g["seeds"])), "training steps": g["steps"]}
        for m in ("accuracy", "macro_f1", "minority_f1"):
            mean, std, lo = g[f"{m}_mean"], g[f"{m}_std"], g[f"{m}_lo"]
            if mean is None or pd.isna(mean):
                row[m] = "—"
            elif g["n"] >= 2 and std is not None and not pd.isna(std):
                row[m] = f"{mean:.4f} ± {std:.4f} std over {g['n']} seeds"
            else:
                row[m] = f"{mean:.4f} (one run)"
            row[f"{m} 95% CI"] = f"[{lo:.4f}, {g[f'{m}_hi']:.4f}]" if lo is not None and not pd.isna(lo) else "—"
        row["± test set (accuracy)"] = f"±{half:.4f}" if half is not None else "—"
        rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:
        out.insert(4, "compute", report.compute_column(groups))
    return out


def _classes(cd: pd.DataFrame) -> list[str]:
    return next((r for r in cd["classes"] if r), None) or [str(i) for i in range(len(cd["per_class_f1"].iloc[0] or []))]


def per_class_view(cd: pd.DataFrame, groups: pd.DataFrame) -> None:
    """Per-class F1 of every setting at once (a heat map), minority classes first, counts on the axis.
    One row per setting, labelled as in the table (``groups``): runs that differ in anything but the
    seed (another study's steps, say) are never averaged under one method name."""
    classes = _classes(cd)
    arch = st.selectbox("Per-class F1 for classifier", sorted(cd["classifier"].dropna().unique()), key="res_pc_arch")
    label = {rid: g["label"] for _, g in groups.iterrows() for rid in g["runs"]}
    sub = cd[cd["classifier"] == arch]
    sub = sub.assign(method=sub["run_id"].map(label).fillna(sub["method"]))
    counts = next((r for r in sub["imbalanced_counts"] if r and len(r) == len(classes)), None)
    st.plotly_chart(viz.per_class_f1_heatmap(report.per_class_long(sub), classes, counts, title=f"per-class F1 of every method · {arch}"),
                    key="res_pcf1", width="stretch", config=chart_config(f"per-class-f1-{arch}"))
    st.caption("Per-class F1 of each method (the paper's Table 4), mean over seeds. Columns run from the smallest class in the "
               "imbalanced training set to the largest; n is the class's real training images"
               + ("." if counts else " (not recorded by these runs: columns in class order)."))


def confusion_view(cd: pd.DataFrame) -> None:
    """Two chosen runs' confusion matrices side by side, and their difference (B − A)."""
    classes = _classes(cd)
    names = list(cd["run_id"] + " · " + cd["method"].astype(str) + " · " + cd["classifier"].astype(str))
    st.markdown("**Confusion matrices**: two runs side by side, and what changed from A to B")
    c = st.columns(2)
    a = c[0].selectbox("Run A", names, key="res_cm")
    b = c[1].selectbox("Run B", names, index=min(1, len(names) - 1), key="res_cm_b")
    ra, rb = cd.iloc[names.index(a)], cd.iloc[names.index(b)]
    if not ra["confusion_matrix"] or not rb["confusion_matrix"]:
        st.caption("One of these runs recorded no confusion matrix.")
        return
    c = st.columns(3)
    for col, r, tag in ((c[0], ra, "A"), (c[1], rb, "B")):
        fig = viz.confusion_figure(r["confusion_matrix"], classes)
        fig.update_layout(title=f"{tag}: {r['method']} · {r['classifier']}")
        col.plotly_chart(fig, key=f"res_cmfig_{tag}", width="stretch", config=chart_config(f"confusion-{r['run_id']}"))
    try:
        c[2].plotly_chart(viz.confusion_difference_figure(ra["confusion_matrix"], rb["confusion_matrix"], classes, "A", "B"),
                          key="res_cmfig_diff", width="stretch", config=chart_config("confusion-difference"))
    except ValueError as exc:
        c[2].warning(f"These two runs cannot be compared cell by cell: {exc}.")
    st.caption("Colours are the share of each true class (rows) predicted as each class (columns); numbers in A and B are counts. "
               "The difference is B − A: blue where B predicts that cell more often, red where less; each row sums to 0.")


st.title("Results")
root = runs_dir()
mgr = manager()

# -- runs table -----------------------------------------------------------------------------
st.subheader("Runs")
table = runs_table(root)
if strict() and not table.empty:  # a shared server: this identity's runs only (a teacher's: all)
    table = table[table["id"].isin({r.id for r in visible_runs()})]
if table.empty:
    st.info("No runs yet. Train a model on the **Train** page, or start a study on the **Study** page.")
else:
    f = st.columns([2, 2, 3])
    kinds = f[0].multiselect("Kind", sorted(table["kind"].dropna().unique()), key="res_kinds")
    states = f[1].multiselect("State", sorted(table["state"].dropna().unique()), key="res_states")
    text = f[2].text_input("Filter (id, message, dataset…)", key="res_text")
    shown = table
    if kinds:
        shown = shown[shown["kind"].isin(kinds)]
    if states:
        shown = shown[shown["state"].isin(states)]
    if text:
        mask = shown.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
        shown = shown[mask]
    st.dataframe(shown.drop(columns=["path"]), hide_index=True, width="stretch")
    with st.expander("Provenance: commit, package versions, device, and the command or page that started each run"):
        st.dataframe(pd.DataFrame([summary_row(rid, Run(root / rid).provenance) for rid in shown["id"]]), hide_index=True, width="stretch",
                     key="res_provenance")
    compare = st.multiselect("Compare runs (loss curves and the settings that differ)", list(shown["id"]), max_selections=6, key="res_compare")
    if compare:
        configs, curves = {}, []
        for rid in compare:
            run = Run(root / rid)
            if not run.exists():
                st.warning(f"Run {rid} was removed from disk; it is left out.")
                continue
            configs[rid] = run.config
            m = run.metrics()
            if not m.empty and "step" in m and "loss" in m:
                curves.append(m[["step", "loss"]].dropna().assign(run=rid))
        if curves:
            import plotly.express as px

            st.plotly_chart(px.line(pd.concat(curves), x="step", y="loss", color="run", title="loss"), key="res_cmp_loss", width="stretch",
                            config=chart_config("loss-compare"))
        diff = report.compare_configs(configs)
        if diff.empty:
            st.caption("These runs have identical settings.")
        else:
            st.dataframe(diff, width="stretch")

# -- classifier and generation results ---------------------------------------------------------
cls_df = report.classifier_results(root)
gen_df = report.generation_results(root)
if strict():  # a shared server: rows of this identity's runs and studies only (a teacher's: all)
    mine = {r.id for r in visible_runs()}
    if not cls_df.empty:
        cls_df = cls_df[cls_df["source"].isin(mine) | ((cls_df["source"] == "standalone") & cls_df["run_id"].isin(mine))]
    if not gen_df.empty:
        gen_df = gen_df[gen_df["source"].isin(mine)]
st.subheader("Method comparison")
if cls_df.empty and gen_df.empty:
    st.info("No finished classifier runs or studies yet. Train a classifier on the **Train** page (Classifier tab), or run the "
            "quick study: every method × seed, compared here when it finishes.")
else:
    sources = ["all"] + sorted(set(cls_df["source"]) | set(gen_df["source"]))
    c = st.columns([2, 2, 2])
    wanted = st.query_params.get("study")  # the Study page links here with ?study=<id>: that study's rows only
    source = c[0].selectbox("Results from", sources, index=sources.index(wanted) if wanted in sources else 0, key="res_source",
                            help="'standalone' = classifier runs launched on the Train page; a study id: that study's rows only")
    datasets = sorted(cls_df["dataset"].dropna().unique()) or ["—"]
    dataset = c[1].selectbox("Dataset", datasets, key="res_dataset")
    paper = c[2].toggle("Show the paper's reported figures", value=False, key="res_paper",
                        help="Yoo, Kim, Lee 2024 on CIFAR-10: a labelled reference series, not a result of this lab")
    cd = cls_df if source == "all" else cls_df[cls_df["source"] == source]
    cd = cd[cd["dataset"] == dataset] if dataset != "—" else cd
    gd = gen_df if source == "all" else gen_df[gen_df["source"] == source]

    if not gd.empty:
        for metric, g in gd.groupby("metric"):
            label = g["label"].iloc[0]
            ref = viz.paper_reference("fid") if paper else None
            st.plotly_chart(viz.metric_bars(g, "value", x="method", color=None, paper=ref, title=f"{label} of (imbalanced + generated) vs the full train split, lower is better"),
                            key=f"res_gen_{metric}", width="stretch", config=chart_config(f"generation-{metric}"))
            if paper and metric != "fid":
                st.caption(f"Note: the paper's numbers are Inception-v3 FID on CIFAR-10; {label} uses other features and is not comparable in scale.")
        if gd["kid"].notna().any():
            kid = gd.dropna(subset=["kid"])
            st.plotly_chart(viz.metric_bars(kid, "kid", x="method", color=None, title=f"{kid['kid_label'].iloc[0]}, lower is better"), key="res_kid", width="stretch", config=chart_config("kid"))
    elif paper:
        st.plotly_chart(viz.metric_bars(pd.DataFrame(), "FID", paper=viz.paper_reference("fid"), title="FID (paper only: no generation metrics measured yet)"),
                        key="res_gen_paper", width="stretch", config=chart_config("fid-paper"))

    if not cd.empty:
        # Like with like: runs pooled only when their whole configuration, seeds aside, is the same.
        groups = report.group_runs(cd)
        unequal = report.unequal_compute(groups)
        c = st.columns(2)
        acc_fig = viz.ci_bars(groups, "accuracy", scale=100, title="test accuracy (%) per setting; bars: 95% CI over seeds (n ≥ 2)")
        if paper:
            viz.add_paper_series(acc_fig, viz.paper_reference("accuracy"), "ResNet18")
        c[0].plotly_chart(viz.mark_unequal_compute(acc_fig, unequal), key="res_acc", width="stretch", config=chart_config("accuracy"))
        c[1].plotly_chart(viz.mark_unequal_compute(viz.ci_bars(groups, "macro_f1", title="macro-F1 per setting; bars: 95% CI over seeds (n ≥ 2)"), unequal),
                          key="res_f1", width="stretch", config=chart_config("macro-f1"))
        if paper and dataset != "cifar10":
            c[0].caption("The paper's series is ResNet18 on CIFAR-10 (its Table 3), shown for orientation only: not comparable with results on another dataset.")
        if unequal:
            st.warning(f"Not a fair comparison: {unequal}. A method that trained longer or on more images can win for that reason alone. "
                       "Train each with the same budget in optimizer steps (the **Train** page's default), or compare within one study.")
        st.dataframe(group_table(groups, cd), hide_index=True, width="stretch", key="res_groups")
        st.caption("One row per setting: runs are pooled only when every setting but the seeds is the same (device, logging and "
                   "checkpoint cadence aside); settings that differ are named in the label. The CI covers seed-to-seed spread; "
                   "the test set's own sampling error is the ± column (binomial 95% half-width of the accuracy). "
                   "**compute**: each setting's optimizer steps and images seen, \u26a0 when the rows differ in them.")
        per_class_view(cd, groups)
        confusion_view(cd)
    csv = cd.drop(columns=["per_class_f1", "confusion_matrix", "classes"], errors="ignore")
    if not csv.empty:
        f1 = pd.DataFrame([r or [] for r in cd["per_class_f1"]], index=csv.index).add_prefix("f1_class_")
        csv = pd.concat([csv, f1], axis=1)
    st.download_button("Download results (CSV)", csv.to_csv(index=False).encode(), file_name="imbalance-lab-results.csv", mime="text/csv", key="res_csv")
    if not gd.empty:
        st.download_button("Download generation metrics (CSV)", gd.to_csv(index=False).encode(), file_name="imbalance-lab-generation.csv", mime="text/csv", key="res_gen_csv")

# -- studies: verdicts against the references ---------------------------------------------------
srows = report.study_rows(root)
if strict() and not srows.empty:
    srows = srows[srows["study"].isin({r.id for r in visible_runs()})]
if not srows.empty:
    st.subheader("Studies: each method against its references")
    shown_rows = srows[["study", "method", "classifier", "state", "n_seeds", "steps", "images_seen", "train_size",
                        "accuracy_mean", "accuracy_lo", "accuracy_hi", "accuracy_test_hw95", "macro_f1_mean", "minority_f1_mean", "converged",
                        "last_doubling_gain", "share_of_gap_accuracy", "share_of_gap_minority_f1", "gate", "gate_tail_consistency",
                        "gate_real_tail_consistency", "gate_precision", "gate_real_precision", "gate_near_copy_rate", "why"]].copy()
    # within a study and classifier, rows that differ in steps or images seen are flagged (a study's budget = "epochs")
    shown_rows.insert(5, "compute", report.compute_column(srows, by=["study", "classifier"]))
    study_unequal = next((n for _, g in srows.groupby(["study", "classifier"], sort=False) if (n := report.unequal_compute(g))), None)
    st.dataframe(shown_rows, hide_index=True, width="stretch", key="res_study_rows",
                 column_config={"accuracy_lo": "accuracy CI low", "accuracy_hi": "accuracy CI high",
                                "accuracy_test_hw95": "± test set (binomial 95%)", "why": "failed / unavailable / below gate because",
                                "last_doubling_gain": st.column_config.NumberColumn("gain of the last doubling of steps", format="%.4f"),
                                "gate": st.column_config.TextColumn("gate", help="generator fills only: ✓ passed, ✗ below the gate "
                                                                    "(state below_gate: figures shown, no verdict)"),
                                "gate_tail_consistency": "gate: tail consistency", "gate_precision": "gate: precision",
                                "gate_near_copy_rate": "gate: tail near-copy rate"})
    sc = st.columns(2)
    study_acc = viz.mark_unequal_compute(viz.ci_bars(srows.assign(label=srows["study"].str[-24:] + " · " + srows["method"].astype(str)), "accuracy", scale=100,
                                   title="study accuracy (%) per method; bars: 95% CI over seeds"), study_unequal)
    sc[0].plotly_chart(study_acc, key="res_study_acc", width="stretch", config=chart_config("study-accuracy"))
    sc[1].plotly_chart(viz.mark_unequal_compute(viz.ci_bars(srows.assign(label=srows["study"].str[-24:] + " · " + srows["method"].astype(str)), "macro_f1",
                                   title="study macro-F1 per method; bars: 95% CI over seeds"), study_unequal),
                       key="res_study_f1", width="stretch", config=chart_config("study-macro-f1"))
    verdicts = report.verdict_table(srows)
    if not verdicts.empty:
        st.dataframe(verdicts, hide_index=True, width="stretch", key="res_verdicts")
        st.caption("Paired over the seeds both methods share. **better/worse**: the 95% CI of the difference excludes 0. "
                   "**inconclusive** means no difference was detected with these seeds, not that the methods are equal. "
                   "**below gate**: the generator's fill failed its gate (tail consistency, precision, tail near-copy rate), so "
                   "no verdict is drawn and the comparison is left out of the Holm correction.")
    # one study as a self-contained HTML file to send; built only when clicked (a callable)
    from core.study.report import build_html

    rc = st.columns([3, 2], vertical_alignment="bottom")
    studies = sorted(srows["study"].unique(), reverse=True)
    wanted = st.query_params.get("study")  # the Study page links here with ?study=<id>
    rep = rc[0].selectbox("Study report", studies, index=studies.index(wanted) if wanted in studies else 0, key="res_report_study")
    curves = report.study_curves(report.study_result_rows(root / rep))
    if curves.empty:
        st.caption(f"{rep} has no budget curves (a study from before they were recorded).")
    else:
        cc = st.columns(2)
        for col, metric in zip(cc, ("accuracy", "minority_f1")):
            col.plotly_chart(viz.budget_curves(curves, metric, title=f"{rep[-24:]}: {metric.replace('_', ' ')} against optimizer steps"),
                             key=f"res_curve_{metric}", width="stretch", config=chart_config(f"budget-curve-{metric}"))
        st.caption("Each point is a separate run of that many steps (same recipe, its schedule scaled), mean over seeds. "
                   "A row has converged when its last doubling of steps gained < 1 accuracy point; dashed lines have not, "
                   "and their comparisons are labelled **under-trained**, not concluded.")
    rc[1].download_button("Download study report (HTML)", data=lambda p=root / rep: build_html(p).encode(),
                          file_name=f"{rep}-report.html", mime="text/html", key="res_report_html",
                          help="Every chart, the tables, the config, commit and versions in one HTML file that opens offline")

# -- whole study --------------------------------------------------------------------------
st.page_link("app_pages/study.py", label="Run a whole study (every method × classifier × seed) on the Study page", icon=":material/science:")
