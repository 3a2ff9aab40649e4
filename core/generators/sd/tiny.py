"""A randomly initialised miniature SD pipeline for tests, benchmarks and offline smoke tests."""

from __future__ import annotations

from pathlib import Path

import torch


def build_tiny_pipeline(folder: str | Path, seed: int = 0, sample_size: int = 16) -> Path:
    """Save a randomly initialised miniature SD pipeline (it makes noise) to ``folder``.

    For tests, benchmarks and offline smoke tests of the loading path: same layout as a
    downloaded SD 1.5 folder (unet, vae, text_encoder, tokenizer, scheduler,
    model_index.json), ~1 MB, native size ``sample_size * 2`` pixels. The CLIP tokenizer is
    built from an in-memory vocabulary (byte-level alphabet, its ``</w>`` forms and the
    start/end tokens) and a few merges, so nothing is downloaded.
    """
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(alphabet + [a + "</w>" for a in alphabet])}
    merges = [("a", "t</w>"), ("o", "f</w>"), ("p", "h"), ("ph", "o")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
            max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=sample_size * 2,
    )
    # SD 1.5's noise schedule ("scaled_linear", 0.00085 -> 0.012)
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder
