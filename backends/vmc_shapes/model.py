"""The ``shapes`` key-frame model: Show-1's video UNet at a tiny size plus a small text
encoder, trained from scratch on the shapes world (see ``vmc_shapes.train``).

Pixel space like Show-1's base model: 8 frames of 32x32 in [-1, 1], epsilon prediction,
cosine noise schedule. Text: a 2-layer CLIP text transformer over the hashing word
tokenizer of the tiny backend (no vocabulary file), trained jointly with the UNet.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

WEIGHTS = Path(__file__).parent / "weights" / "shapes.safetensors"
SIZE = 32
FRAMES = 8

UNET = dict(
    act_fn="gelu", addition_embed_type="text", addition_embed_type_num_heads=4, attention_head_dim=8,
    block_out_channels=[32, 64], cross_attention_dim=64, cross_attention_norm="group_norm",
    down_block_types=["ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D"], encoder_hid_dim=64,
    encoder_hid_dim_type="text_proj", in_channels=3, layers_per_block=1,
    mid_block_type="UNetMidBlock3DSimpleCrossAttn", norm_num_groups=32, out_channels=3,
    resnet_time_scale_shift="scale_shift", sample_size=SIZE,
    up_block_types=["SimpleCrossAttnUpBlock3D", "ResnetUpsampleBlock3D"],
)
TEXT = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=16, pad_token_id=0, bos_token_id=1, eos_token_id=2)
SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                 clip_sample=False, set_alpha_to_one=True, steps_offset=0)


def build(seed: int = 0):
    """Fresh (untrained) UNet, text encoder and tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel
    from vmc_show1.unet import Show1UNet3DConditionModel
    from vmc_tiny.backend import HashTokenizer

    torch.manual_seed(seed)
    unet = Show1UNet3DConditionModel.from_config(UNET)
    text = CLIPTextModel(CLIPTextConfig(**TEXT))
    return unet, text, HashTokenizer(TEXT["vocab_size"], TEXT["max_position_embeddings"])


def save(path: Path, unet, text, metadata: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"unet.{k}": v.detach().to("cpu", torch.float16).contiguous() for k, v in unet.state_dict().items()}
    tensors.update({f"text.{k}": v.detach().to("cpu", torch.float16).contiguous()
                    for k, v in text.state_dict().items()})
    meta = {"unet_config": json.dumps(UNET), "text_config": json.dumps(TEXT), "scheduler": json.dumps(SCHEDULER),
            **{k: json.dumps(v) for k, v in metadata.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def load(path: Path = WEIGHTS, device="cpu"):
    """The trained UNet, text encoder and tokenizer (weights stored in float16, run in float32)."""
    from safetensors import safe_open

    unet, text, tokenizer = build()
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    unet.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("unet.")}, strict=True)
    text.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("text.")}, strict=True)
    return unet.eval().to(device), text.eval().to(device), tokenizer


def metadata(path: Path = WEIGHTS) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
