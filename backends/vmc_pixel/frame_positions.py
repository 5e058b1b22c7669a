"""Frame positions for temporal attention (an option of the Show-1 UNet; Show-1 has none).

diffusers' ``TransformerTemporalModel``, Show-1's temporal attention, has no positional
encoding: it is exactly permutation-equivariant over frames (``benchmarks/shapes_equivariance.py``
measures it), so its q/k/v, the parameters VMC tunes, cannot tell one frame from another and
can steer motion only through what the features already say. AnimateDiff's motion modules add
sinusoidal frame positions before their attention; :class:`FramePositionTemporalModel` does the
same, scaled by a learned per-channel gain that starts at zero (a model converted from trained
weights predicts exactly as before until the gain is trained). The positions are seen by the
attention only: what they add to the residual path is taken off again, so the block's output
is ``attention(x + g pe) + x``.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel


def sinusoidal(frames: int, channels: int) -> torch.Tensor:
    """(frames, channels): sin/cos of ``f / 10000^(2i/channels)``, interleaved (AnimateDiff's form)."""
    position = torch.arange(frames, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(frames, channels)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : channels // 2]
    return table


class FramePositionTemporalModel(TransformerTemporalModel):
    """``TransformerTemporalModel`` whose attention sees each frame's position
    (:func:`convert`); same parameters plus ``frame_position_gain`` (channels,)."""

    def forward(self, hidden_states, encoder_hidden_states=None, timestep=None, class_labels=None, num_frames=1,
                cross_attention_kwargs=None, return_dict=True):
        frames_in_batch, channels = hidden_states.shape[:2]
        if num_frames > self.frame_positions.shape[0]:
            raise ValueError(f"{num_frames} frames, but frame positions go up to {self.frame_positions.shape[0]}")
        shift = (self.frame_positions[:num_frames] * self.frame_position_gain).to(hidden_states.dtype)
        shift = shift.repeat(frames_in_batch // num_frames, 1)[:, :, None, None]  # (batch * frames, C, 1, 1)
        out = super().forward(hidden_states + shift, encoder_hidden_states, timestep, class_labels, num_frames,
                              cross_attention_kwargs, return_dict=False)[0] - shift
        if not return_dict:
            return (out,)
        from diffusers.models.transformers.transformer_temporal import TransformerTemporalModelOutput

        return TransformerTemporalModelOutput(sample=out)


def convert(module: TransformerTemporalModel, max_frames: int) -> FramePositionTemporalModel:
    """Give ``module`` frame positions up to ``max_frames`` in place (its class, a buffer and a
    zero gain): it predicts exactly as before until the gain moves."""
    channels = module.in_channels
    module.__class__ = FramePositionTemporalModel
    module.register_buffer("frame_positions", sinusoidal(max_frames, channels), persistent=False)
    module.frame_position_gain = torch.nn.Parameter(torch.zeros(channels))
    return module


def add_frame_positions(unet: torch.nn.Module, max_frames: int, marker: str = "temp_attentions") -> list[str]:
    """Every temporal attention block of ``unet`` (modules ``<...>.<marker>.N``) with frame positions."""
    names = [n for n, m in unet.named_modules()
             if isinstance(m, TransformerTemporalModel) and n.split(".")[-2:-1] == [marker]]
    for name in names:
        convert(unet.get_submodule(name), max_frames)
    return names
