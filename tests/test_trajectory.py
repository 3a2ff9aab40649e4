"""The denoising trajectory (core.diffusion.trajectory): hand-checked numbers on fake ε-networks,
and the promise that only guidance differs between the columns."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core.diffusion.samplers import make_scheduler
from core.diffusion.trajectory import STEP_KEYS, guidance_norm, predicted_x0, trajectory
from core.errors import Cancelled, ConfigError

SHAPE = (1, 4, 4)  # 16 pixels: ‖1‖₂ = 4
NULL = 3  # a 3-class model: labels 0..2, null label 3


def constant_eps(cond: float, uncond: float):
    """ε(x, t, c) = cond for a class label, uncond for the null label, whatever x and t."""

    def eps(x, t, labels):
        v = torch.where(labels == NULL, torch.tensor(uncond), torch.tensor(cond))
        return v.view(-1, 1, 1, 1).expand_as(x).clone()

    return eps


def linear_eps(x, t, labels):
    """A fake network whose two branches differ and depend on x: guidance changes the path."""
    scale = torch.where(labels == NULL, torch.tensor(0.2), 0.1 * (labels + 1).float())
    return scale.view(-1, 1, 1, 1) * x + 0.01 * (t.float() / 1000).view(-1, 1, 1, 1)


def test_predicted_x0_by_hand():
    # ᾱ = 0.64: sqrt(ᾱ) = 0.8, sqrt(1 − ᾱ) = 0.6; x̂₀ = (1 − 0.6·0.5) / 0.8 = 0.875
    out = predicted_x0(torch.tensor([1.0]), torch.tensor([0.5]), 0.64)
    assert out.item() == pytest.approx(0.875, abs=1e-6)
    # ... and it inverts the forward process x_t = sqrt(ᾱ)·x_0 + sqrt(1−ᾱ)·ε
    x0, eps = torch.tensor([0.3, -0.7]), torch.tensor([1.5, -2.0])
    assert torch.allclose(predicted_x0(0.8 * x0 + 0.6 * eps, eps, 0.64), x0, atol=1e-6)


def test_guidance_norm_is_abs_w_times_branch_gap():
    ec, eu = torch.ones(2, *SHAPE) * 0.5, torch.ones(2, *SHAPE) * -0.5  # ε_c − ε_u = 1 on 16 pixels: ‖·‖ = 4
    assert guidance_norm(ec, eu, torch.tensor([2.0, 0.0])).tolist() == [8.0, 0.0]


@pytest.mark.parametrize("sampler", ["dpm", "ddim", "ddpm"])
def test_trajectory_records_eq8_and_x0_hat_on_a_known_eps(sampler):
    ws = [0.0, 2.0, 7.5]
    traj = trajectory(constant_eps(0.5, -0.5), 1, seed=7, shape=SHAPE, null_label=NULL, ws=ws, sampler=sampler, steps=5)
    S = 5
    for key in STEP_KEYS:
        assert traj[key].shape == (3, S, *SHAPE), key
    assert traj["guidance_norm"].shape == (3, S) and traj["final"].shape == (3, *SHAPE)
    assert traj["timesteps"].tolist() == make_scheduler(sampler, 5).timesteps.tolist()
    # ε̃ = (1+w)·0.5 − w·(−0.5) = 0.5 + w: 0.5, 2.5, 8.0
    for k, w in enumerate(ws):
        assert torch.all(traj["eps_cond"][k] == 0.5) and torch.all(traj["eps_uncond"][k] == -0.5)
        assert torch.allclose(traj["eps_guided"][k], torch.full((S, *SHAPE), 0.5 + w))
        # ‖w·(ε_c − ε_u)‖ = |w|·‖1‖ = 4|w| at every step
        assert torch.allclose(traj["guidance_norm"][k], torch.full((S,), 4 * w))
    # x̂₀ from the formula with the scheduler's ᾱ at each recorded timestep
    alphas = make_scheduler(sampler, 5).alphas_cumprod
    for i, t in enumerate(traj["timesteps"].tolist()):
        a = float(alphas[t])
        assert traj["alpha_bar"][i].item() == pytest.approx(a)
        want = (traj["x_t"][:, i] - math.sqrt(1 - a) * traj["eps_guided"][:, i]) / math.sqrt(a)
        assert torch.allclose(traj["x0_hat"][:, i], want, atol=1e-5)


def test_every_column_starts_from_the_seed_noise():
    traj = trajectory(linear_eps, 0, seed=11, shape=SHAPE, null_label=NULL, ws=[0.0, 1.0, 5.0], sampler="dpm", steps=4)
    x_T = torch.randn((1, *SHAPE), generator=torch.Generator().manual_seed(11))[0]
    for k in range(3):
        assert torch.equal(traj["x_t"][k, 0], x_T)
    assert not torch.equal(traj["x_t"][0, -1], traj["x_t"][2, -1]), "different w must change the path on this fake"


@pytest.mark.parametrize("sampler", ["dpm", "ddpm"])
def test_equal_w_columns_are_bit_identical(sampler):
    traj = trajectory(linear_eps, 2, seed=3, shape=SHAPE, null_label=NULL, ws=[1.5, 4.0, 1.5], sampler=sampler, steps=6)
    for key in (*STEP_KEYS, "guidance_norm", "final"):
        assert torch.equal(traj[key][0], traj[key][2]), key
    assert not torch.equal(traj["final"][0], traj["final"][1])


def test_ddpm_columns_share_the_step_noise():
    # both branches predict 0, so ε̃ = 0 for every w: the columns can only differ through the
    # ancestral noise, which must be the same stream in each column
    traj = trajectory(constant_eps(0.0, 0.0), 0, seed=5, shape=SHAPE, null_label=NULL, ws=[0.0, 3.0, 9.0], sampler="ddpm", steps=8)
    assert torch.equal(traj["x_t"][0], traj["x_t"][1]) and torch.equal(traj["x_t"][0], traj["x_t"][2])
    assert not torch.equal(traj["x_t"][0, 1], traj["x_t"][0, 2])  # noise was drawn: the steps differ


def test_real_tiny_unet_equal_w_bit_identical():
    from core.diffusion.samplers import model_eps_fn
    from core.nets.unet import build_unet

    torch.manual_seed(0)
    eps = model_eps_fn(build_unet("tiny", 10, 1, 16).eval(), "cpu")
    traj = trajectory(eps, 4, seed=1, shape=(1, 16, 16), null_label=10, ws=[2.0, 0.0, 2.0], sampler="ddpm", steps=3)
    assert torch.equal(traj["x_t"][0], traj["x_t"][2]) and torch.equal(traj["final"][0], traj["final"][2])
    assert torch.equal(traj["x_t"][0, 0], traj["x_t"][1, 0]) and not torch.equal(traj["final"][0], traj["final"][1])


def test_bad_inputs_and_cancel():
    with pytest.raises(ConfigError, match="at least one value of w"):
        trajectory(linear_eps, 0, 0, SHAPE, NULL, ws=[])
    with pytest.raises(ConfigError, match="must be a finite number >= 0"):
        trajectory(linear_eps, 0, 0, SHAPE, NULL, ws=[1.0, -1.0])
    with pytest.raises(ConfigError, match="Class 3 does not exist: the model has 3 classes"):
        trajectory(linear_eps, 3, 0, SHAPE, NULL, ws=[1.0])
    calls = []
    with pytest.raises(Cancelled):
        trajectory(linear_eps, 0, 0, SHAPE, NULL, ws=[1.0], steps=5, progress=lambda d, t: calls.append((d, t)),
                   should_stop=lambda: len(calls) >= 2)
    assert calls == [(1, 5), (2, 5)]


def test_saved_trajectory_round_trip(tmp_path):
    from core.jobs.runners import load_trajectory, save_trajectory

    traj = trajectory(linear_eps, 1, seed=2, shape=SHAPE, null_label=NULL, ws=[0.0, 2.0], steps=3)
    path = save_trajectory(tmp_path / "trajectory.npz", traj)
    back = load_trajectory(path)
    assert set(back) == set(traj)
    for k, v in traj.items():
        assert np.array_equal(back[k], v.numpy()), k


# ------------------------------------------------------------------------------ figures
def test_viz_denoise_images_and_charts():
    from core.viz import denoise as vd

    assert vd.signed_to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])).tolist() == [0, 128, 255, 255]  # 127.5 rounds to even: 128
    assert vd.signed_to_uint8(np.array([-3.0, 1.5, 3.0]), vd.EPS_RANGE).tolist() == [0, 191, 255]  # (0.5 + 1)·127.5 = 191.25
    traj = {k: v.numpy() for k, v in trajectory(linear_eps, 1, seed=2, shape=SHAPE, null_label=NULL, ws=[0.0, 2.0], steps=3).items()}
    imgs = vd.step_images(traj, 1, 2, target=64)
    assert set(imgs) == {"x_t", "x0_hat", "eps_cond", "eps_uncond", "eps_guided"}
    assert imgs["x_t"].shape == (4 * 16 + 4, 4 * 16 + 4, 3)  # 4 px upscaled 16× (target 64) + a 2 px frame
    assert vd.step_label(traj, 0).startswith(f"step 1 of 3 · t = {int(traj['timesteps'][0])} · ᾱ_t = ")
    fig = vd.guidance_norm_figure(traj, step=1)
    assert [t.name for t in fig.data] == ["w = 0 (scale 1)", "w = 2 (scale 3)"]
    assert list(fig.data[0].y) == [0.0, 0.0, 0.0] and list(fig.data[1].x) == [1, 2, 3]
    assert fig.layout.shapes[0].x0 == 2
    anim = vd.trajectory_animation(traj)
    assert len(anim.data) == 4 and len(anim.frames) == 3  # (x_t, x̂₀) × 2 columns; one frame per step
    assert anim.frames[2].data[0].z.shape == (4, 4, 3)
    assert np.array_equal(anim.frames[2].data[1].z[..., 0], vd.signed_to_uint8(traj["x_t"][1, 2, 0]))


# ------------------------------------------------------------------------------ the job kind
def test_trajectory_lane_and_runner_errors(tmp_path):
    from core.jobs import runners as jr
    from core.jobs import JobManager, lane_for

    assert lane_for("trajectory", {"ws": [0, 2, 7.5], "steps": 100}) == "interactive"
    assert lane_for("trajectory", {"ws": [0, 1, 2, 7.5], "steps": 25}) == "train"  # 4 columns > 3
    assert lane_for("trajectory", {"ws": [0, 2], "steps": 101}) == "train"  # 101 steps > 100
    assert (jr.TRAJECTORY_MAX_WS, jr.TRAJECTORY_MAX_STEPS) == (3, 100)
    m = JobManager(root=tmp_path, devices=["cpu"])
    try:
        gone = m.submit("trajectory", {"cfg_run": "no-such-run", "class_idx": 0, "ws": [0, 2], "steps": 5})
        m.wait(gone.id, 30)
        assert gone.state == "failed" and "The CFG run no-such-run no longer exists" in gone.error
        (tmp_path / "model").mkdir()
        four = m.submit("trajectory", {"cfg_run": "model", "class_idx": 0, "ws": [0, 1, 2, 3], "steps": 5})
        m.wait(four.id, 30)
        assert four.state == "failed" and "compares 1 to 3 values of w, got 4" in four.error
    finally:
        m.shutdown()


# ------------------------------------------------------------------------------ the CLI
def test_trajectory_cli_writes_the_npz_the_strip_and_params_and_reruns_from_them(tmp_path, capsys):
    from PIL import Image

    from core.cli import main
    from tests.test_scripting import TINY_CFG

    run = tmp_path / "cfg"
    assert main(["-q", "train-cfg", *TINY_CFG, "--out", str(run)]) == 0
    out = tmp_path / "traj"
    assert main(["trajectory", "--run", str(run), "--class", "1", "--w", "0,7.5", "--sample-steps", "4", "--seed", "3", "--out", str(out)]) == 0
    assert "mean ‖ε̃ − ε(x,c)‖₂ per w: w=0: 0.000, w=7.5:" in capsys.readouterr().out  # w = 0 adds no guidance (Eq. 8)
    with np.load(out / "trajectory.npz") as z:
        traj = {k: z[k] for k in z.files}
    C, H = 1, 16  # TINY_CFG's data: digits, one channel, 16 px
    assert traj["x0_hat"].shape == (2, 4, C, H, H) and traj["final"].shape == (2, C, H, H)
    assert list(traj["ws"]) == [0.0, 7.5] and np.all(traj["guidance_norm"][0] == 0) and np.all(traj["guidance_norm"][1] > 0)
    assert np.array_equal(traj["x_t"][0, 0], traj["x_t"][1, 0])  # one seed: every w starts from the same noise
    params = json.loads((out / "params.json").read_text())
    assert params["class_idx"] == 1 and params["ws"] == [0.0, 7.5] and params["guidance_scales"] == [1.0, 8.5] and params["steps"] == 4
    # the strip: 2 rows (one per w) of 4 steps + the sample, 1 px padding, upscaled 64 // 16 = 4 times
    assert Image.open(out / "trajectory.png").size == ((5 * (H + 1) + 1) * 4, (2 * (H + 1) + 1) * 4)
    # re-run from its params.json into another folder: the same numbers, bit for bit
    again = tmp_path / "again"
    assert main(["-q", "trajectory", "--config", str(out / "params.json"), "--out", str(again)]) == 0
    with np.load(again / "trajectory.npz") as z:
        assert all(np.array_equal(z[k], traj[k]) for k in traj)
    # bad input: the CLI's words, exit 2, nothing written
    for argv, words in ((["--w", "0,1,2,3"], "--w has 4 values; the trajectory compares 1 to 3"),
                        (["--sample-steps", "0"], "--sample-steps 0 is out of range"), (["--w", "-1"], "negative or NaN"),
                        (["--class", "eleven"], "eleven")):
        bad = tmp_path / "bad"
        assert main(["trajectory", "--run", str(run), "--out", str(bad), *argv]) == 2
        assert words in capsys.readouterr().err and not bad.exists()
