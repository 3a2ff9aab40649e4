"""Diffusion: classifier-free guidance, samplers over diffusers schedulers, CBDM, denoising trajectories
and the diffusers pipeline an exported generator ships with."""
