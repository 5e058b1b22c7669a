"""The ``shapes-wan`` model: Wan 2.1's architecture at a tiny size, trained on the shapes world.

The four parts of ``WanPipeline``, each diffusers' or transformers' own class, built from the
configs here and trained by :mod:`vmc_shapes_wan.train`:

- ``AutoencoderKLWan``: 4x spatial downsampling (two stages), **no temporal downsampling**
  (``temperal_downsample=[False, False]``, ``scale_factor_temporal=1``), 8 latent channels. The
  VAE still reads a clip as a first frame and chunks of four (its causal cache), so clips have
  ``4k + 1`` frames; with no temporal folding each frame keeps a latent frame of its own.
- ``WanTransformer3DModel``: 6 blocks of width 128 (4 heads of 32), 2x2 patches over the 8x8
  latents, full self-attention over all 9 x 4 x 4 = 144 tokens of a clip with 3D rotary positions
  (frame, height, width): the attention sees frame order, unlike Show-1's temporal attention.
- ``UMT5EncoderModel`` (2 layers, width 64) with the letters tokenizer of
  :func:`vmc_wan.tiny.tiny_tokenizer` (32 tokens), trained with the transformer.
- ``FlowMatchEulerDiscreteScheduler`` (shift 1): rectified flow, the network predicts
  ``v = eps - x0``.

Why 9 frames at 32x32: the shapes world's frame size, and 9 = 4 x 2 + 1 is the nearest length the
VAE's chunking takes to the 8 key-frames of VMC and the ``shapes`` model; without temporal
downsampling those are 9 latent frames, 8 motion steps, so a path is seen frame by frame (Wan's
4x temporal folding would leave 3 latent frames of an 9-frame clip, too few to hold a zig-zag).
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights"
FRAMES, SIZE = 9, 32
LATENT_CHANNELS = 8
TEXT_DIM = 64
TEXT_LENGTH = 32

VAE = dict(base_dim=16, z_dim=LATENT_CHANNELS, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
           temperal_downsample=[False, False], dropout=0.0,
           latents_mean=[0.0] * LATENT_CHANNELS, latents_std=[1.0] * LATENT_CHANNELS,
           scale_factor_temporal=1, scale_factor_spatial=4)
TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=32,
                   in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, text_dim=TEXT_DIM, freq_dim=64,
                   ffn_dim=512, num_layers=6, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                   rope_max_seq_len=32)
TEXT = dict(d_model=TEXT_DIM, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
            dropout_rate=0.0)
SHIFT = 1.0


def tokenizer():
    from vmc_wan.tiny import tiny_tokenizer

    return tiny_tokenizer(TEXT_LENGTH)


def build_vae(seed: int = 0):
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(**VAE)


def build_denoiser(seed: int = 0):
    """Fresh transformer and text encoder."""
    import torch
    from diffusers import WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**TRANSFORMER)
    torch.manual_seed(seed + 1)
    text = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer()), **TEXT))
    return transformer, text


def scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=SHIFT)
