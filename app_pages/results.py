"""Results page: the runs table, generation metrics, accuracy / F1 by method and classifier, confusion matrix."""

from __future__ import annotations


import pandas as pd
import streamlit as st

from core import report, viz
from core.errors import LabError
from core.provenance import summary_row
from core.paths import runs_dir
from core.runs import Run, runs_table
from app_pages._common import data_cfg, job_panel, manager, optional, page_name, poll_every

def group_table(groups: pd.DataFrame, cd: pd.DataFrame) -> pd.DataFrame:
    """The groups as a readable table: mean ± std only for several seeds of one setting, the CI, steps."""
    from core.stats import binomial_halfwidth

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
    return pd.DataFrame(rows)


st.title("Results")
root = runs_dir()
mgr = manager()

# -- runs table -----------------------------------------------------------------------------
st.subheader("Runs")
table = runs_table(root)
if table.empty:
    st.info("No runs yet. Train a model on the **Train** page, or run a whole study below.")
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

            st.plotly_chart(px.line(pd.concat(curves), x="step", y="loss", color="run", title="loss"), key="res_cmp_loss", width="stretch")
        diff = report.compare_configs(configs)
        if diff.empty:
            st.caption("These runs have identical settings.")
        else:
            st.dataframe(diff, width="stretch")

# -- classifier and generation results ---------------------------------------------------------
cls_df = report.classifier_results(root)
gen_df = report.generation_results(root)
st.subheader("Method comparison")
if cls_df.empty and gen_df.empty:
    st.info("No finished classifier runs or studies yet.")
else:
    sources = ["all"] + sorted(set(cls_df["source"]) | set(gen_df["source"]))
    c = st.columns([2, 2, 2])
    source = c[0].selectbox("Results from", sources, key="res_source", help="'standalone' = classifier runs launched on the Train page")
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
                            key=f"res_gen_{metric}", width="stretch")
            if paper and metric != "fid":
                st.caption(f"Note: the paper's numbers are Inception-v3 FID on CIFAR-10; {label} uses other features and is not comparable in scale.")
        if gd["kid"].notna().any():
            kid = gd.dropna(subset=["kid"])
            st.plotly_chart(viz.metric_bars(kid, "kid", x="method", color=None, title=f"{kid['kid_label'].iloc[0]}, lower is better"), key="res_kid", width="stretch")
    elif paper:
        st.plotly_chart(viz.metric_bars(pd.DataFrame(), "FID", paper=viz.paper_reference("fid"), title="FID (paper only: no generation metrics measured yet)"),
                        key="res_gen_paper", width="stretch")

    if not cd.empty:
        # Like with like: runs pooled only when their whole configuration, seeds aside, is the same.
        groups = report.group_runs(cd)
        c = st.columns(2)
        acc_fig = viz.ci_bars(groups, "accuracy", scale=100, title="test accuracy (%) per setting; bars: 95% CI over seeds (n ≥ 2)")
        if paper:
            viz.add_paper_series(acc_fig, viz.paper_reference("accuracy"), "ResNet18")
        c[0].plotly_chart(acc_fig, key="res_acc", width="stretch")
        c[1].plotly_chart(viz.ci_bars(groups, "macro_f1", title="macro-F1 per setting; bars: 95% CI over seeds (n ≥ 2)"),
                          key="res_f1", width="stretch")
        if paper and dataset != "cifar10":
            c[0].caption("The paper's series is ResNet18 on CIFAR-10 (its Table 3), shown for orientation only: not comparable with results on another dataset.")
        st.dataframe(group_table(groups, cd), hide_index=True, width="stretch", key="res_groups")
        st.caption("One row per setting: runs are pooled only when every setting but the seeds is the same (device, logging and "
                   "checkpoint cadence aside); settings that differ are named in the label. The CI covers seed-to-seed spread; "
                   "the test set's own sampling error is the ± column (binomial 95% half-width of the accuracy).")
        classes = next((r for r in cd["classes"] if r), None) or [str(i) for i in range(len(cd["per_class_f1"].iloc[0] or []))]
        minority = next((r for r in cd["minority_classes"] if r), None) or []
        arch = st.selectbox("Per-class F1 for classifier", sorted(cd["classifier"].dropna().unique()), key="res_pc_arch")
        st.plotly_chart(viz.per_class_f1_figure(report.per_class_long(cd[cd["classifier"] == arch]), classes, minority),
                        key="res_pcf1", width="stretch")
        st.caption("Per-class F1 across methods (the paper's Table 4); shaded columns are the minority classes.")
        pick = st.selectbox("Confusion matrix of run", list(cd["run_id"] + " · " + cd["method"] + " · " + cd["classifier"].astype(str)), key="res_cm")
        row = cd.iloc[[i for i, v in enumerate(cd["run_id"] + " · " + cd["method"] + " · " + cd["classifier"].astype(str)) if v == pick][0]]
        if row["confusion_matrix"]:
            st.plotly_chart(viz.confusion_figure(row["confusion_matrix"], classes), key="res_cmfig", width="stretch")
    csv = cd.drop(columns=["per_class_f1", "confusion_matrix", "classes"], errors="ignore")
    if not csv.empty:
        f1 = pd.DataFrame([r or [] for r in cd["per_class_f1"]], index=csv.index).add_prefix("f1_class_")
        csv = pd.concat([csv, f1], axis=1)
    st.download_button("Download results (CSV)", csv.to_csv(index=False).encode(), file_name="imbalance-lab-results.csv", mime="text/csv", key="res_csv")
    if not gd.empty:
        st.download_button("Download generation metrics (CSV)", gd.to_csv(index=False).encode(), file_name="imbalance-lab-generation.csv", mime="text/csv", key="res_gen_csv")

# -- studies: verdicts against the references ---------------------------------------------------
srows = report.study_rows(root)
if not srows.empty:
    st.subheader("Studies: each method against its references")
    shown_rows = srows[["study", "method", "classifier", "state", "n_seeds", "steps", "images_seen", "train_size",
                        "accuracy_mean", "accuracy_lo", "accuracy_hi", "accuracy_test_hw95", "macro_f1_mean", "minority_f1_mean", "why"]]
    st.dataframe(shown_rows, hide_index=True, width="stretch", key="res_study_rows",
                 column_config={"accuracy_lo": "accuracy CI low", "accuracy_hi": "accuracy CI high",
                                "accuracy_test_hw95": "± test set (binomial 95%)", "why": "failed / unavailable because"})
    sc = st.columns(2)
    sc[0].plotly_chart(viz.ci_bars(srows.assign(label=srows["study"].str[-24:] + " · " + srows["method"].astype(str)), "accuracy", scale=100,
                                   title="study accuracy (%) per method; bars: 95% CI over seeds"), key="res_study_acc", width="stretch")
    sc[1].plotly_chart(viz.ci_bars(srows.assign(label=srows["study"].str[-24:] + " · " + srows["method"].astype(str)), "macro_f1",
                                   title="study macro-F1 per method; bars: 95% CI over seeds"), key="res_study_f1", width="stretch")
    verdicts = report.verdict_table(srows)
    if not verdicts.empty:
        st.dataframe(verdicts, hide_index=True, width="stretch", key="res_verdicts")
        st.caption("Paired over the seeds both methods share. **better/worse**: the 95% CI of the difference excludes 0. "
                   "**inconclusive** means no difference was detected with these seeds, not that the methods are equal.")

# -- whole study --------------------------------------------------------------------------
with st.expander("Run a whole study (every method × classifier × seed) in the background"):
    exp, why = optional("core.experiment")
    if exp is None:
        st.warning(f"Studies are not available yet: {why}")
    else:
        c = st.columns(3)
        name = c[0].selectbox("Preset", list(exp.PRESETS), key="res_study_preset")
        own = c[1].checkbox("Use the dataset from the Dataset page", value=False, key="res_study_own")
        if c[2].button("Start study", key="res_study_go"):
            try:
                cfg = exp.preset(name)
                if own:
                    cfg.data = data_cfg()
                cfg.validate()
                job = mgr.submit("study", cfg.to_dict(), name=cfg.name, page=page_name())
                st.session_state["res_study_job"] = job.id
            except LabError as exc:
                st.error(str(exc))
        st.caption("The quick preset runs on digits in about ten minutes on a laptop CPU; the paper preset needs a GPU.")


@st.fragment(run_every=poll_every())
def study_view() -> None:
    rid = st.session_state.get("res_study_job")
    if rid:
        job_panel(rid, key="study", show_curve=False, show_preview=False)


study_view()
