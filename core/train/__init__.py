"""Training loops: the CFG diffusion model and classifiers (one at a time or several as one ``vmap``
computation), their losses and on-device augmentation. Config in, run folder out; no balancing here."""
