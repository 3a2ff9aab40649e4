"""Pure figure and image-grid builders for the app (plotly figures, numpy arrays; no Streamlit).

Every function takes plain data (lists, tensors, DataFrames) and returns a figure or an
array, so pages stay thin and the builders are unit-testable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# The paper's reported figures (Yoo, Kim, Lee 2024), shown only as a labelled reference series.
PAPER_LABEL = "paper (Yoo et al. 2024, reported)"
PAPER_FID = {"mixup": 39.0, "cutmix": 43.0, "cfg@w=0.1": 28.0, "cfg@w=7.5": 17.7, "sd": 6.56}
PAPER_ACC_RESNET18 = {"mixup": 77.7, "cutmix": 80.3, "cfg@w=0.1": 79.3, "cfg@w=7.5": 81.5, "sd": 83.7}
MINORITY_COLOR = "rgba(214, 39, 40, 0.12)"


# ---------------------------------------------------------------------------- images
def to_numpy_images(images) -> np.ndarray:
    """uint8 (N, C, H, W) tensor/array -> numpy uint8 (N, C, H, W)."""
    arr = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ValueError(f"expected uint8 (N,C,H,W), got {arr.dtype} {arr.shape}")
    return arr


def auto_scale(image_size: int, target: int = 64) -> int:
    """Integer nearest-neighbour upscale so tiny images (8-32 px) are visible."""
    return max(1, int(round(target / max(1, image_size))))


def image_grid(images, ncol: int | None = None, pad: int = 2, scale: int | None = None, pad_value: int = 255) -> np.ndarray:
    """Tile images row-major into one (H, W, 3) uint8 array (grayscale is repeated to RGB);
    ``torchvision.utils.make_grid`` does the tiling."""
    import torch
    from torchvision.utils import make_grid

    arr = to_numpy_images(images)
    n, c, h, w = arr.shape
    if n == 0:
        return np.full((h or 1, w or 1, 3), pad_value, np.uint8)
    if c == 1:
        arr = np.repeat(arr, 3, axis=1)
    elif c != 3:
        arr = arr[:, :3]
    scale = scale or auto_scale(max(h, w))
    if scale > 1:
        arr = arr.repeat(scale, axis=2).repeat(scale, axis=3)
    ncol = ncol or min(n, 8)
    # make_grid narrows the grid to n columns when n < ncol and returns a lone image unpadded: blank
    # (pad-coloured) tiles keep ncol columns and the frame, as callers lay rows out by ncol
    if n < max(ncol, 2):
        arr = np.concatenate([arr, np.full((max(ncol, 2) - n, *arr.shape[1:]), pad_value, np.uint8)])
    grid = make_grid(torch.from_numpy(arr), nrow=ncol, padding=pad, pad_value=pad_value)
    if n == 1 and ncol == 1:  # the second, blank tile only defeated make_grid's unpadded single image
        grid = grid[:, : arr.shape[2] + 2 * pad, : arr.shape[3] + 2 * pad]
    return grid.permute(1, 2, 0).numpy().copy()


def rows_grid(rows: Sequence, pad: int = 2, scale: int | None = None) -> np.ndarray:
    """One grid row per entry of ``rows`` (each uint8 (n_i, C, H, W)); short rows are padded."""
    rows = [to_numpy_images(r) for r in rows]
    ncol = max((len(r) for r in rows), default=1)
    shape = next((r.shape[1:] for r in rows if len(r)), (3, 8, 8))
    filled = []
    for r in rows:
        if len(r) < ncol:
            r = np.concatenate([r, np.full((ncol - len(r), *shape), 255, np.uint8)])
        filled.append(r)
    return image_grid(np.concatenate(filled), ncol=ncol, pad=pad, scale=scale)


def labelled_grid(rows: Sequence, row_labels: Sequence[str], col_labels: Sequence[str] | None = None, pad: int = 2,
                  scale: int | None = None, row_title: str = "", col_title: str = "") -> np.ndarray:
    """``rows_grid`` with a label left of every row and above every column (drawn with PIL's
    built-in bitmap font, so it needs no font file). Rows are e.g. classes or w; columns seeds."""
    from PIL import Image, ImageDraw

    body = rows_grid(rows, pad=pad, scale=scale)
    arrs = [to_numpy_images(r) for r in rows]
    ncol = max((len(r) for r in arrs), default=1)
    cell_h = (body.shape[0] - pad) // max(1, len(arrs))
    cell_w = (body.shape[1] - pad) // max(1, ncol)
    char_w, line_h = 6, 11  # PIL's default bitmap font is about 6 x 11 pixels per character
    left = char_w * max([len(str(x)) for x in row_labels] + [len(row_title)] + [1]) + 6
    top = (line_h + 4) * (1 + bool(col_title)) if col_labels is not None else (line_h + 4 if col_title else 0)
    canvas = Image.new("RGB", (left + body.shape[1], top + body.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(canvas)
    if row_title:
        draw.text((2, 1), row_title, fill=(90, 90, 90))
    if col_title:
        draw.text((left + 2, 1), col_title, fill=(90, 90, 90))
    if col_labels is not None:
        y = top - line_h - 2
        for k, text in enumerate(col_labels[:ncol]):
            draw.text((left + pad + k * cell_w + 1, y), str(text)[: max(1, cell_w // char_w)], fill=(0, 0, 0))
    for r, text in enumerate(row_labels[: len(arrs)]):
        draw.text((2, top + pad + r * cell_h + max(0, (cell_h - line_h) // 2)), str(text), fill=(0, 0, 0))
    return np.asarray(canvas)


# --------------------------------------------------------------------------- dataset
def counts_figure(classes: list[str], real: list[int], added: list[int] | None = None, available: list[int] | None = None,
                  minority: list[int] | None = None, added_label: str = "added by balancing") -> go.Figure:
    """Per-class counts: real images kept by the profile, stacked with what balancing adds."""
    fig = go.Figure()
    fig.add_bar(name="real (after profile)", x=classes, y=real, marker_color="#1f77b4")
    if added is not None:
        fig.add_bar(name=added_label, x=classes, y=added, marker_color="#ff7f0e", marker_pattern_shape="/")
    if available is not None and list(available) != list(real):
        fig.add_scatter(name="available (full split)", x=classes, y=available, mode="markers", marker=dict(symbol="line-ew-open", size=22, color="#444"))
    _highlight(fig, classes, minority)
    fig.update_layout(barmode="stack", xaxis=dict(title="class", type="category"), yaxis_title="training images", legend=dict(orientation="h", y=1.12), margin=dict(t=40, b=40))
    return fig


def _highlight(fig: go.Figure, classes: list[str], minority: list[int] | None) -> None:
    for c in minority or []:
        fig.add_vrect(x0=c - 0.5, x1=c + 0.5, fillcolor=MINORITY_COLOR, line_width=0, layer="below")
    if minority:
        fig.add_annotation(text="shaded: minority classes", xref="paper", yref="paper", x=1, y=1.02, showarrow=False, font=dict(size=11, color="#d62728"), xanchor="right")


# --------------------------------------------------------------------------- training
def loss_figure(metrics: pd.DataFrame, x: str = "step", columns: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """Line chart of loss-like columns over steps (all numeric columns containing 'loss' by default)."""
    fig = go.Figure()
    if metrics is None or metrics.empty or x not in metrics:
        fig.update_layout(title=title or "no metrics yet", xaxis_title=x)
        return fig
    columns = columns or [c for c in metrics.columns if "loss" in c and pd.api.types.is_numeric_dtype(metrics[c])]
    for c in columns:
        d = metrics[[x, c]].dropna()
        fig.add_scatter(x=d[x].tolist(), y=d[c].tolist(), mode="lines", name=c)
    fig.update_layout(title=title, xaxis_title=x, yaxis_title="loss", margin=dict(t=40 if title else 20, b=40), legend=dict(orientation="h", y=1.1))
    return fig


# ---------------------------------------------------------------------------- guidance
def _over_w(df: pd.DataFrame | None) -> tuple[go.Figure, pd.DataFrame | None]:
    """A new figure and the rows sorted by w; (a figure titled "not computed yet", None) without any."""
    fig = go.Figure()
    if df is None or df.empty or "w" not in df:
        fig.update_layout(title="not computed yet")
        return fig, None
    return fig, df.sort_values("w")


def guidance_curves(df: pd.DataFrame) -> go.Figure:
    """Class-consistency and diversity over w (two y-axes); x shows w, hover shows 1 + w."""
    fig, d = _over_w(df)
    if d is None:
        return fig
    if "class_consistency" in d:
        fig.add_scatter(x=d["w"].tolist(), y=d["class_consistency"].tolist(), name="class consistency (judge accuracy)", mode="lines+markers", line=dict(color="#1f77b4"),
                        customdata=(1 + d["w"]).tolist(), hovertemplate="w=%{x}<br>guidance_scale=%{customdata}<br>consistency=%{y:.3f}")
    if "diversity" in d:
        fig.add_scatter(x=d["w"].tolist(), y=d["diversity"].tolist(), name="diversity (mean pairwise judge-feature distance)", mode="lines+markers", yaxis="y2", line=dict(color="#ff7f0e", dash="dot"),
                        customdata=(1 + d["w"]).tolist(), hovertemplate="w=%{x}<br>guidance_scale=%{customdata}<br>diversity=%{y:.3f}")
    fig.update_layout(xaxis_title="w (paper's guidance weight; guidance_scale = 1 + w)", yaxis=dict(title="class consistency", range=[0, 1.05]),
                      yaxis2=dict(title="diversity", overlaying="y", side="right"), legend=dict(orientation="h", y=1.15), margin=dict(t=40))
    return fig


def novelty_curves(df: pd.DataFrame) -> go.Figure:
    """Near-copy rate, precision and recall over w (all shares in [0, 1]); x shows w, hover shows 1 + w."""
    fig, d = _over_w(df)
    if d is None:
        return fig
    series = [("near_copy_rate", "near-copy rate (closer to a training image than 95% of new real images)", "#d62728", "solid"),
              ("precision", "precision (how real they look)", "#2ca02c", "dash"),
              ("recall", "recall (how much of the real variety they cover)", "#9467bd", "dot")]
    for key, name, color, dash in series:
        if key in d and d[key].notna().any():
            fig.add_scatter(x=d["w"].tolist(), y=d[key].tolist(), name=name, mode="lines+markers", line=dict(color=color, dash=dash),
                            customdata=(1 + d["w"]).tolist(), hovertemplate=f"w=%{{x}}<br>guidance_scale=%{{customdata}}<br>{key}=%{{y:.3f}}")
    fig.update_layout(xaxis_title="w (paper's guidance weight; guidance_scale = 1 + w)", yaxis=dict(title="share of images", range=[0, 1.05]),
                      legend=dict(orientation="h", y=1.2), margin=dict(t=40))
    return fig


# ----------------------------------------------------------------------------- results
def method_label(method: str | None, params: dict | None = None) -> str:
    """The generator name a balance method produces ("cfg@w=7.5", "mixup", ...)."""
    method = method or "none"
    params = params or {}
    if method == "cfg" and "w" in params:
        return f"cfg@w={float(params['w']):g}"
    return method


def summarize(df: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """mean, std (0 for one seed) and n of ``value`` per group."""
    g = df.dropna(subset=[value]).groupby(by, dropna=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    return out


def _paper_key(method: str) -> str:
    return "sd" if method.startswith("sd") else method


def metric_bars(df: pd.DataFrame, value: str, x: str = "method", color: str | None = "arch", scale: float = 1.0,
                paper: dict | None = None, paper_color_value: str | None = None, title: str = "") -> go.Figure:
    """Grouped bars of mean ``value`` per ``x`` (and ``color``) with ±1 std error bars over seeds.

    ``paper`` adds a separate, clearly named series with the paper's reported numbers.
    """
    fig = go.Figure()
    if df is not None and not df.empty and value in df:
        by = [x] + ([color] if color and color in df else [])
        s = summarize(df, by, value)
        groups = [(None, s)] if len(by) == 1 else list(s.groupby(by[1], dropna=False))
        for name, g in groups:
            fig.add_bar(name=str(name) if name is not None else value, x=g[x].tolist(), y=(g["mean"] * scale).tolist(),
                        error_y=dict(type="data", array=(g["std"] * scale).tolist(), visible=True),
                        customdata=np.stack([g["n"], g["std"] * scale], axis=-1),
                        hovertemplate="%{x}: %{y:.3g} ± %{customdata[1]:.2g} (n=%{customdata[0]} seeds)")
    if paper:
        fig.add_bar(name=PAPER_LABEL + (f" — {paper_color_value}" if paper_color_value else ""), x=list(paper), y=list(paper.values()),
                    marker=dict(color="rgba(0,0,0,0)", line=dict(color="#555", width=2)), marker_pattern_shape="x")
    fig.update_layout(barmode="group", title=title, xaxis=dict(title=x, type="category"), yaxis_title=value, showlegend=True,
                      legend=dict(orientation="h", y=-0.25, yanchor="top"), margin=dict(t=50 if title else 30))
    return fig


METRIC_RANGE = {"accuracy": (0.0, 1.0), "balanced_accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "minority_f1": (0.0, 1.0)}


def ci_bars(groups: pd.DataFrame, metric: str, scale: float = 1.0, title: str = "", label: str = "label",
            color: str | None = "classifier") -> go.Figure:
    """One bar per group of identical settings (``core.study.tables.group_runs`` or a study's rows):
    the mean over its seeds, with the 95 % CI as an error bar only when the group has n >= 2.

    The y axis is bounded to the metric's range (0-1, times ``scale``); hover shows n and steps.
    """
    fig = go.Figure()
    mean, lo, hi = f"{metric}_mean", f"{metric}_lo", f"{metric}_hi"
    if groups is not None and not groups.empty and mean in groups:
        g_all = groups.dropna(subset=[mean])
        parts = [(None, g_all)] if not color or color not in g_all else list(g_all.groupby(color, dropna=False, sort=False))
        for name, g in parts:
            has_ci = g[lo].notna() & g[hi].notna()
            up = ((g[hi] - g[mean]).where(has_ci, 0.0) * scale).tolist()
            down = ((g[mean] - g[lo]).where(has_ci, 0.0) * scale).tolist()
            n = g["n"] if "n" in g else g.get("n_seeds", pd.Series([1] * len(g), index=g.index))
            steps = g["steps"].astype(str) if "steps" in g else pd.Series(["?"] * len(g), index=g.index)
            fig.add_bar(name=str(name) if name is not None else metric, x=g[label].tolist(), y=(g[mean] * scale).tolist(),
                        error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, visible=True),
                        customdata=np.stack([n.astype(str), steps, np.where(has_ci, "95% CI over seeds", "one run: no error bar")], axis=-1),
                        hovertemplate="%{x}: %{y:.4g}<br>n=%{customdata[0]} · %{customdata[2]}<br>steps %{customdata[1]}<extra></extra>")
    lo_r, hi_r = METRIC_RANGE.get(metric, (None, None))
    yaxis = dict(title=metric + (" (%)" if scale == 100 else ""))
    if lo_r is not None:
        yaxis["range"] = [lo_r * scale, hi_r * scale]
    fig.update_layout(barmode="group", title=title, xaxis=dict(title="setting", type="category"), yaxis=yaxis, showlegend=True,
                      legend=dict(orientation="h", y=-0.35, yanchor="top"), margin=dict(t=50 if title else 30))
    return fig


def add_paper_series(fig: go.Figure, paper: dict, suffix: str = "") -> go.Figure:
    """The paper's reported numbers as a separate, clearly named, hollow series."""
    if paper:
        fig.add_bar(name=PAPER_LABEL + (f" — {suffix}" if suffix else ""), x=list(paper), y=list(paper.values()),
                    marker=dict(color="rgba(0,0,0,0)", line=dict(color="#555", width=2)), marker_pattern_shape="x")
    return fig


def confusion_figure(cm, classes: list[str], normalize: bool = True) -> go.Figure:
    """Confusion-matrix heatmap; rows = true class, columns = predicted."""
    m = np.asarray(cm, dtype=float)
    z = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    fig = go.Figure(go.Heatmap(z=z.tolist(), x=list(classes), y=list(classes), colorscale="Blues", zmin=0, zmax=1 if normalize else None,
                               text=m.astype(int), texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_layout(xaxis=dict(title="predicted", type="category"), yaxis=dict(title="true", type="category", autorange="reversed"), margin=dict(t=30))
    return fig


def paper_reference(metric: str) -> dict[str, float]:
    """The paper's reported numbers for a metric name ('fid' or 'accuracy'), else {}."""
    if metric.lower() == "fid":
        return dict(PAPER_FID)
    if metric.lower() in ("accuracy", "acc"):
        return dict(PAPER_ACC_RESNET18)
    return {}


# ------------------------------------------------------------------ comparisons (issue 20)
def per_class_f1_heatmap(rows: pd.DataFrame, classes: list[str], counts: Sequence[int] | None = None, title: str = "") -> go.Figure:
    """Per-class F1 of every method at once: one row per method, one column per class.

    Columns run minority first (ascending training count; ties by class index) and each is
    labelled with its count, e.g. "airplane (n=5)". ``rows``: method, class (index), f1, one
    row per run and class (averaged here over seeds). Replaces the grouped bars.
    """
    order, labels = per_class_axis(classes, counts)
    fig = go.Figure()
    if rows is not None and not rows.empty:
        s = rows.groupby(["method", "class"])["f1"].mean()
        methods = list(dict.fromkeys(rows["method"]))
        z = [[s.get((m, c), np.nan) for c in order] for m in methods]
        fig.add_heatmap(z=z, x=labels, y=[str(m) for m in methods], zmin=0, zmax=1, colorscale="Viridis", colorbar=dict(title="F1"),
                        texttemplate="%{z:.2f}", hovertemplate="%{y} · %{x}: F1 %{z:.3f}<extra></extra>")
    fig.update_layout(title=title, xaxis=dict(title="class (training images), minority first", type="category"),
                      yaxis=dict(title="method", type="category", autorange="reversed"), margin=dict(t=50 if title else 30))
    return fig


def per_class_axis(classes: list[str], counts: Sequence[int] | None = None) -> tuple[list[int], list[str]]:
    """(class indices minority first, their axis labels "name (n=count)"); without counts, index order."""
    if counts is None or len(counts) != len(classes):
        return list(range(len(classes))), [str(c) for c in classes]
    order = sorted(range(len(classes)), key=lambda c: (int(counts[c]), c))
    return order, [f"{classes[c]} (n={int(counts[c])})" for c in order]


def confusion_difference(cm_a, cm_b) -> np.ndarray:
    """Row-normalised confusion of run B minus run A (rows = true class): + where B predicts that
    cell more often. Each row of a normalised matrix sums to 1, so each row of the difference sums to 0."""
    a, b = np.asarray(cm_a, dtype=float), np.asarray(cm_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"confusion matrices of different shapes: {a.shape} and {b.shape}")
    return b / np.maximum(b.sum(axis=1, keepdims=True), 1) - a / np.maximum(a.sum(axis=1, keepdims=True), 1)


def confusion_difference_figure(cm_a, cm_b, classes: list[str], name_a: str = "A", name_b: str = "B") -> go.Figure:
    """Heatmap of ``confusion_difference`` (B − A), diverging colours centred at 0."""
    d = confusion_difference(cm_a, cm_b)
    lim = max(float(np.abs(d).max()), 1e-9)
    fig = go.Figure(go.Heatmap(z=d.tolist(), x=list(classes), y=list(classes), colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim,
                               texttemplate="%{z:+.2f}", hovertemplate="true %{y}, predicted %{x}: %{z:+.3f}<extra></extra>",
                               colorbar=dict(title="Δ rate")))
    fig.update_layout(title=f"difference: {name_b} − {name_a} (share of each true class)", xaxis=dict(title="predicted", type="category"),
                      yaxis=dict(title="true", type="category", autorange="reversed"), margin=dict(t=50))
    return fig


def budget_curves(points: pd.DataFrame, metric: str = "accuracy", title: str = "") -> go.Figure:
    """``metric`` against optimizer steps (log axis), one line per ``series`` (method · classifier);
    a series whose row has not converged is dashed and says so in its name (``converged`` column;
    a missing value, from a study that did not record it, draws a plain line)."""
    fig = go.Figure()
    if not points.empty and metric in points:
        for name, g in points.dropna(subset=[metric]).groupby("series", sort=False):
            g = g.sort_values("steps")
            flag = g["converged"].iloc[0] if "converged" in g else None
            conv = flag is None or pd.isna(flag) or bool(flag)
            fig.add_scatter(x=g["steps"].tolist(), y=g[metric].tolist(), mode="lines+markers",
                            name=str(name) + ("" if conv else " (not converged)"), line=dict(dash="solid" if conv else "dash"))
    fig.update_layout(title=title or None, xaxis=dict(title="optimizer steps (log scale)", type="log"),
                      yaxis=dict(title=metric.replace("_", " "), range=[0, 1]), legend=dict(orientation="h", y=-0.25, yanchor="top"),
                      margin=dict(t=40 if title else 30))
    return fig


def mark_unequal_compute(fig: go.Figure, note: str | None) -> go.Figure:
    """A red warning above a comparison chart whose runs differ in training steps or images seen."""
    if note:
        fig.add_annotation(text=f"⚠ {note}", xref="paper", yref="paper", x=0, y=1.0, xanchor="left", yanchor="bottom",
                           showarrow=False, font=dict(size=12, color="#d62728"), name="unequal-compute")
        fig.update_layout(margin=dict(t=80))
    return fig


# ------------------------------------------------------------------------------ export
EXPORT_WIDTH = 1600  # px: the toolbar's PNG download is at least this wide
GRID_EXPORT_SCALE = 4  # an image grid's PNG download is upscaled this much (nearest-neighbour)


def image_button_config(fmt: str = "png", filename: str = "imbalance-lab-chart") -> dict:
    """plotly.js config for a chart's toolbar camera button (``toImageButtonOptions``): PNG at
    EXPORT_WIDTH px wide (the browser renders it, no server-side renderer), or SVG. plotly.js has
    one such button per chart, so the format is a choice rather than two buttons."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"export format {fmt!r}: choose png or svg")
    return {"displaylogo": False, "toImageButtonOptions": {"format": fmt, "filename": filename, "width": EXPORT_WIDTH,
                                                           "height": EXPORT_WIDTH * 9 // 16, "scale": 1}}


def grid_png(grid: np.ndarray, scale: int = GRID_EXPORT_SCALE) -> bytes:
    """An (H, W, 3) uint8 grid as PNG bytes, upscaled ``scale``× with nearest-neighbour (sharp pixels)."""
    import io

    from PIL import Image

    arr = np.asarray(grid)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
