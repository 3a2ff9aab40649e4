"""Results page: the runs table, generation metrics, accuracy / F1 by method and classifier, confusion matrix."""

from __future__ import annotations


import pandas as pd
import streamlit as st

from core import report, viz
from core.errors import LabError
from core.paths import runs_dir
from core.runs import Run, runs_table
from app_pages._common import POLL_S, data_cfg, job_panel, manager, optional

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
        st.dataframe(diff, width="stretch") if not diff.empty else st.caption("These runs have identical settings.")

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
        c = st.columns(2)
        ref = viz.paper_reference("accuracy") if paper else None
        c[0].plotly_chart(viz.metric_bars(cd, "accuracy", x="method", color="classifier", scale=100, paper=ref, paper_color_value="ResNet18",
                                          title="test accuracy (%) by method, ±1 std over seeds"), key="res_acc", width="stretch")
        c[1].plotly_chart(viz.metric_bars(cd, "macro_f1", x="method", color="classifier", title="macro-F1 by method, ±1 std over seeds"),
                          key="res_f1", width="stretch")
        if paper and dataset != "cifar10":
            c[0].caption("The paper's series is ResNet18 on CIFAR-10 (its Table 3), shown for orientation only: not comparable with results on another dataset.")
        summary = pd.concat([viz.summarize(cd, ["method", "classifier"], k).assign(metric=k) for k in ("accuracy", "macro_f1", "minority_f1")
                             if cd[k].notna().any()])
        st.dataframe(summary, hide_index=True, width="stretch")
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
                job = mgr.submit("study", cfg.to_dict(), name=cfg.name)
                st.session_state["res_study_job"] = job.id
            except LabError as exc:
                st.error(str(exc))
        st.caption("The quick preset runs on digits in about ten minutes on a laptop CPU; the paper preset needs a GPU.")


@st.fragment(run_every=POLL_S)
def study_view() -> None:
    rid = st.session_state.get("res_study_job")
    if rid:
        job_panel(rid, key="study", show_curve=False, show_preview=False)


study_view()
