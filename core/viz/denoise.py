"""Figures and images for the denoising view (Guidance page): pure builders, no Streamlit.

Inputs are the arrays of a saved trajectory (``core.diffusion.trajectory``; loaded with
``core.jobs.runners.load_trajectory``): per-step tensors (W, S, C, H, W) and norms (W, S).
Images in [-1, 1] (x_t, x̂₀) map to 0..255 with clamping. Noise predictions ε are about
N(0, 1) but ε̃ grows with w, so they are drawn on one fixed symmetric range ±EPS_RANGE for
every column and step (grey = 0): a stronger ε̃ shows as more saturated, never rescaled away.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.viz.figures import auto_scale, image_grid

EPS_RANGE = 3.0  # ε images: -3 -> black, 0 -> grey, +3 -> white


def signed_to_uint8(x: np.ndarray, limit: float = 1.0) -> np.ndarray:
    """Floats on [-limit, limit] (clamped) -> uint8 0..255, same shape."""
    x = np.clip(np.asarray(x, dtype=np.float32) / float(limit), -1.0, 1.0)
    return np.round((x + 1.0) * 127.5).astype(np.uint8)


def tile(images: np.ndarray, limit: float = 1.0, target: int = 128) -> np.ndarray:
    """Float images (N, C, H, W) on [-limit, limit] -> one (h, w, 3) uint8 strip, upscaled
    with nearest-neighbour to about ``target`` px per image."""
    arr = signed_to_uint8(images, limit)
    return image_grid(arr, ncol=len(arr), scale=auto_scale(arr.shape[-1], target))


def step_images(traj: dict, column: int, step: int, target: int = 128) -> dict[str, np.ndarray]:
    """The images of one column at one step: x_t, x̂₀, ε(x_t,c), ε(x_t), ε̃, each (h, w, 3) uint8."""
    out = {key: tile(traj[key][column, step][None], 1.0, target) for key in ("x_t", "x0_hat")}
    out.update({key: tile(traj[key][column, step][None], EPS_RANGE, target) for key in ("eps_cond", "eps_uncond", "eps_guided")})
    return out


def step_label(traj: dict, step: int) -> str:
    """'step 3 of 25 · t = 880 · ᾱ_t = 0.0157' for a 0-based step."""
    S = len(traj["timesteps"])
    return f"step {step + 1} of {S} · t = {int(traj['timesteps'][step])} · ᾱ_t = {float(traj['alpha_bar'][step]):.4f}"


def guidance_norm_figure(traj: dict, step: int | None = None) -> go.Figure:
    """‖w·(ε(x_t,c) − ε(x_t))‖₂ along the trajectory, one line per w; a marker at ``step`` (0-based)."""
    ws, norms, ts = np.asarray(traj["ws"]), np.asarray(traj["guidance_norm"]), np.asarray(traj["timesteps"])
    x = np.arange(1, norms.shape[1] + 1)
    fig = go.Figure()
    for k, w in enumerate(ws):
        fig.add_trace(go.Scatter(x=x, y=norms[k], mode="lines+markers", name=f"w = {w:g} (scale {1 + w:g})",
                                 customdata=ts, hovertemplate="step %{x} (t = %{customdata})<br>‖w·(ε_c − ε_u)‖ = %{y:.3f}<extra></extra>"))
    if step is not None:
        fig.add_vline(x=step + 1, line_dash="dot", line_color="grey", annotation_text=f"step {step + 1}", annotation_position="top")
    fig.update_layout(title="Guidance term ‖w·(ε(x_t, c) − ε(x_t))‖₂ along the trajectory", xaxis_title="sampler step (noisy → clean)",
                      yaxis_title="L2 norm over the image", height=340, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def trajectory_animation(traj: dict, keys: tuple[str, ...] = ("x_t", "x0_hat")) -> go.Figure:
    """x_t and x̂₀ of every column as one plotly figure with a Play button and a step slider:
    it plays in the browser, with no round trip to the server (rows: ``keys``, columns: w)."""
    from plotly.subplots import make_subplots

    ws, S = np.asarray(traj["ws"]), len(traj["timesteps"])
    names = {"x_t": "x_t", "x0_hat": "x̂₀"}
    titles = [f"{names.get(k, k)} · w = {w:g}" for k in keys for w in ws]
    fig = make_subplots(rows=len(keys), cols=len(ws), subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.08)

    def rgb(key: str, k: int, i: int) -> np.ndarray:
        img = signed_to_uint8(np.asarray(traj[key])[k, i]).transpose(1, 2, 0)
        return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]

    def images(i: int) -> list[go.Image]:
        return [go.Image(z=rgb(key, k, i), hoverinfo="skip") for key in keys for k in range(len(ws))]

    for n, im in enumerate(images(0)):
        fig.add_trace(im, row=n // len(ws) + 1, col=n % len(ws) + 1)
    fig.frames = [go.Frame(data=images(i), name=str(i + 1), traces=list(range(len(keys) * len(ws)))) for i in range(S)]
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    play = dict(label="▶ Play", method="animate", args=[None, dict(frame=dict(duration=250, redraw=True), fromcurrent=True, transition=dict(duration=0))])
    pause = dict(label="❚❚ Pause", method="animate", args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])
    fig.update_layout(
        height=260 * len(keys) + 80, margin=dict(l=10, r=10, t=40, b=10),
        updatemenus=[dict(type="buttons", direction="left", buttons=[play, pause], x=0, y=-0.02, xanchor="left", yanchor="top")],
        sliders=[dict(active=0, y=-0.02, x=0.2, len=0.8, xanchor="left", yanchor="top", currentvalue=dict(prefix="step "),
                      steps=[dict(label=str(i + 1), method="animate",
                                  args=[[str(i + 1)], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])
                             for i in range(S)])],
    )
    return fig
