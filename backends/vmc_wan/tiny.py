"""A Wan 2.1 miniature with random weights, for tests on a CPU (no download).

:func:`write_tiny_wan` builds the four parts of ``WanPipeline`` from small inline configs with
a fixed seed (a ``WanTransformer3DModel`` of 2 blocks, an ``AutoencoderKLWan`` of the real
one's shape rules: 8x spatial and 4x temporal downsampling, a one-layer ``UMT5EncoderModel``
with a letters-only sentencepiece-style tokenizer, and ``FlowMatchEulerDiscreteScheduler`` with
Wan's 480p shift of 3) and saves them with ``WanPipeline.save_pretrained``: the folder has the
hub repository's layout (``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``), so ``vmc ... --model-path FOLDER`` loads it like the real one.
It takes about a second.
"""

from __future__ import annotations

import string
from pathlib import Path

#: the miniature's sizes: what tests may rely on
TEXT_DIM = 16
LATENT_CHANNELS = 4
TEXT_LENGTH = 24  # the tokenizer's model_max_length (the real one's: 512)
FLOW_SHIFT = 3.0

TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                   in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, text_dim=TEXT_DIM, freq_dim=32,
                   ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                   rope_max_seq_len=32)
VAE = dict(base_dim=4, z_dim=LATENT_CHANNELS, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
           temperal_downsample=[False, True, True],
           # not 0 and 1: the backend's normalisation (x - mean) / std is then checked for real
           latents_mean=[0.1, -0.2, 0.3, 0.05], latents_std=[0.5, 1.5, 2.0, 0.8])


def tiny_tokenizer(max_length: int = TEXT_LENGTH):
    """A T5-style unigram tokenizer over lowercase letters (word starts marked with U+2581)."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + c, -3.0) for c in string.ascii_lowercase]
    pieces += [(c, -4.0) for c in string.ascii_lowercase + string.digits + ",.'-"]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)


def tiny_parts(seed: int = 0) -> dict:
    """The pipeline's components (random weights, fixed seed), by ``WanPipeline``'s argument names."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**TRANSFORMER)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(**VAE)
    torch.manual_seed(seed + 2)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=32,
                                               num_layers=1, num_heads=2, relative_attention_num_buckets=8,
                                               dropout_rate=0.0))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=FLOW_SHIFT)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "scheduler": scheduler,
            "transformer": transformer}


def write_tiny_wan(folder: str | Path, seed: int = 0) -> Path:
    """Save a Wan miniature in ``WanPipeline.save_pretrained``'s layout under ``folder``; returns it."""
    from diffusers import WanPipeline

    folder = Path(folder)
    WanPipeline(**tiny_parts(seed)).save_pretrained(folder)
    return folder
