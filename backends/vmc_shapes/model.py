"""The ``shapes`` key-frame model: Show-1's video UNet at a tiny size plus a small text
encoder, trained from scratch on the shapes world (see ``vmc_shapes.train``).

Pixel space like Show-1's base model: 8 frames of 32x32 in [-1, 1], cosine noise
schedule. The network predicts v (``v = sqrt(abar) eps - sqrt(1 - abar) x0``), not epsilon:
an epsilon model this small never learnt the black-background prior at high noise, where
the epsilon loss barely weighs x0 errors, and its samples from pure noise came out grey.
The backend converts v to the epsilon the method works on. Text: a 2-layer CLIP text transformer over the hashing word
tokenizer of the tiny cascade (:mod:`vmc_pixel.tiny`, no vocabulary file), trained jointly with the UNet.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

#: The shipped weights: a folder in the diffusers layout (unet/, text_encoder/, scheduler/)
#: plus training.json (recipe, time, final loss), loaded with ``from_pretrained`` like any
#: checkpoint.
WEIGHTS = Path(__file__).parent / "weights"
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
SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                 clip_sample=False, set_alpha_to_one=True, steps_offset=0)


def build(seed: int = 0):
    """Fresh (untrained) UNet, text encoder and tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel
    from vmc_pixel.unet import Show1UNet3DConditionModel
    from vmc_pixel.tiny import HashTokenizer

    torch.manual_seed(seed)
    unet = Show1UNet3DConditionModel.from_config(UNET)
    text = CLIPTextModel(CLIPTextConfig(**TEXT))
    return unet, text, HashTokenizer(TEXT["vocab_size"], TEXT["max_position_embeddings"])


def save_pretrained(folder: Path, unet, text, metadata: dict) -> None:
    """Write ``folder`` atomically in the diffusers layout, weights in float16 (a few MB)."""
    import copy
    import shutil

    from diffusers import DDPMScheduler

    from vmc_cli.models.quiet import no_progress_bars, quiet_libraries

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_libraries(), no_progress_bars():
        half = copy.deepcopy(unet).to("cpu", torch.float16)
        # from_pretrained records the folder it read (a machine's own path after --init) in the
        # config; saved weights name the shipped folder instead, so no local path leaks out
        half.register_to_config(_name_or_path="vmc_shapes/weights")
        half.save_pretrained(tmp / "unet")
        copy.deepcopy(text).to("cpu", torch.float16).save_pretrained(tmp / "text_encoder")
    DDPMScheduler.from_config(SCHEDULER).save_pretrained(tmp / "scheduler")
    (tmp / "training.json").write_text(json.dumps(metadata, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def load(folder: Path = WEIGHTS, device="cpu", dtype=torch.float32):
    """The trained UNet, text encoder and tokenizer from a folder written by :func:`save_pretrained`
    (weights stored in float16, run in ``dtype``)."""
    from transformers import CLIPTextModel
    from vmc_cli.models.quiet import no_progress_bars, quiet_libraries
    from vmc_pixel.unet import Show1UNet3DConditionModel
    from vmc_pixel.tiny import HashTokenizer

    folder = Path(folder)
    with quiet_libraries(), no_progress_bars():
        unet = Show1UNet3DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype)
        text = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=dtype)
    tokenizer = HashTokenizer(text.config.vocab_size, text.config.max_position_embeddings)
    return unet.eval().to(device), text.eval().to(device), tokenizer


def with_frame_positions(unet, frames: int):
    """The same UNet with frame positions up to ``frames`` in its temporal attention (zero gain,
    so it predicts exactly as ``unet`` until trained; ``vmc_pixel.frame_positions``)."""
    from vmc_pixel.unet import Show1UNet3DConditionModel

    # (keys in the config's _use_default_values would be reset to their defaults: drop them all)
    config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    new = Show1UNet3DConditionModel.from_config({**config, "temporal_frame_positions": int(frames)})
    missing, unexpected = new.load_state_dict(unet.state_dict(), strict=False)
    if unexpected or any(not k.endswith("frame_position_gain") for k in missing):
        raise RuntimeError(f"frame positions: unexpected {unexpected[:3]}, missing {missing[:3]}")
    return new.to(next(unet.parameters()).dtype).eval()


def training_record(folder: Path = WEIGHTS) -> dict:
    """Recipe, wall time and final loss of the training run that made ``folder``."""
    return json.loads((Path(folder) / "training.json").read_text())
