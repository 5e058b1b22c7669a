"""Frame positions for the Show-1 UNet's temporal attention (``vmc_pixel.frame_positions``).

References: the same UNet without them (identical weights), the permutation of frames (the
temporal attention without positions commutes with it exactly; with them it must not), and
AnimateDiff's sinusoidal table written out here.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))


@pytest.fixture(scope="module")
def models():
    from vmc_shapes.model import UNET, with_frame_positions
    from vmc_pixel.unet import Show1UNet3DConditionModel

    torch.manual_seed(0)
    plain = Show1UNet3DConditionModel.from_config(UNET).eval()
    return plain, with_frame_positions(plain, 16)


def _attention_io(block, frames=8, channels=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(frames, channels, 4, 4, generator=gen)
    perm = torch.randperm(frames, generator=gen)
    with torch.no_grad():
        y = block(x, num_frames=frames, return_dict=False)[0]
        y_perm = block(x[perm], num_frames=frames, return_dict=False)[0]
    return y, y_perm, perm


def test_the_table_is_sinusoidal():
    from vmc_pixel.frame_positions import sinusoidal

    table = sinusoidal(5, 6)
    for f in range(5):
        for i in range(3):
            angle = f / 10000 ** (2 * i / 6)
            assert table[f, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[f, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)


def test_at_zero_gain_the_model_is_unchanged(models):
    plain, positioned = models
    gains = [n for n, _ in positioned.named_parameters() if n.endswith("frame_position_gain")]
    assert len(gains) == len([n for n, _ in plain.named_modules() if n.split(".")[-2:-1] == ["temp_attentions"]])
    x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    text = torch.randn(1, 16, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(plain(x, torch.tensor([500]), text).sample, positioned(x, torch.tensor([500]), text).sample)


def test_without_positions_temporal_attention_ignores_frame_order(models):
    """The finding behind #19: Show-1's temporal attention commutes with any reordering of the
    frames, so its q/k/v cannot tell one frame from another."""
    plain = models[0]
    y, y_perm, perm = _attention_io(plain.down_blocks[1].temp_attentions[0])
    assert torch.allclose(y_perm, y[perm], atol=1e-5)


def test_with_positions_it_does_not(models):
    block = models[1].down_blocks[1].temp_attentions[0]
    with torch.no_grad():
        block.frame_position_gain.fill_(1.0)
    try:
        y, y_perm, perm = _attention_io(block)
        assert (y_perm - y[perm]).abs().max() > 0.05
    finally:
        with torch.no_grad():
            block.frame_position_gain.zero_()


def test_the_positions_reach_the_attention_only(models):
    """Output = attention(x + g pe) + x: with the transformer blocks' output projection zeroed the
    block is the identity, whatever the gain (the shift is taken off the residual path)."""
    import copy

    block = copy.deepcopy(models[1].down_blocks[1].temp_attentions[0])
    with torch.no_grad():
        block.frame_position_gain.fill_(3.0)
        block.proj_out.weight.zero_()
        block.proj_out.bias.zero_()
        x = torch.randn(8, 64, 4, 4)
        assert torch.allclose(block(x, num_frames=8, return_dict=False)[0], x, atol=1e-6)


def test_saved_and_loaded_with_the_config(models, tmp_path):
    from vmc_pixel.unet import Show1UNet3DConditionModel

    positioned = models[1]
    with torch.no_grad():
        positioned.mid_block.temp_attentions[0].frame_position_gain.fill_(0.25)
    try:
        positioned.save_pretrained(tmp_path / "unet")
        back = Show1UNet3DConditionModel.from_pretrained(tmp_path / "unet").eval()
        assert back.config.temporal_frame_positions == 16
        assert torch.equal(back.mid_block.temp_attentions[0].frame_position_gain,
                           positioned.mid_block.temp_attentions[0].frame_position_gain)
    finally:
        with torch.no_grad():
            positioned.mid_block.temp_attentions[0].frame_position_gain.zero_()
