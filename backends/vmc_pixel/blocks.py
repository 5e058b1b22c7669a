"""Down, mid and up blocks of the Show-1 video UNet.

Every block works on frame-folded tensors: a video batch ``(batch, channels, frames,
height, width)`` enters as ``(batch * frames, channels, height, width)`` with the frame
index varying fastest, and ``num_frames`` tells the temporal layers how to unfold it.

Each block layer runs, in this order::

    ResnetBlock2D -> TemporalConvLayer -> spatial attention -> temporal attention

(the attentions only in the attention blocks). Two attention families exist:

* ``SimpleCrossAttn*`` (DeepFloyd IF style, pixel stages base/interp/sr1): the spatial
  attention is an added-KV ``Attention`` (keys/values = text projections concatenated
  with the projections of the image tokens), and
* ``CrossAttn*`` (ZeroScope style, latent stage sr2): the spatial attention is a
  ``Transformer2DModel`` with text cross-attention.

Both use a ``TransformerTemporalModel`` that attends over frames at every pixel.

HEAD SPLITS (easy to get wrong, and they change the outputs by O(1)):

* ``SimpleCrossAttn*``: the spatial added-KV attention has ``C // attention_head_dim``
  heads of size ``attention_head_dim`` (as in diffusers' 2D IF blocks), while the
  temporal transformer has ``attention_head_dim`` heads of size ``C // attention_head_dim``.
* ``CrossAttn*``: both the spatial and the temporal transformer have
  ``num_attention_heads`` heads (which defaults to ``attention_head_dim``, i.e. 64 in the
  real model) of size ``C // num_attention_heads``. This is the reverse of diffusers' own
  ``UNet3DConditionModel`` blocks.

All blocks support gradient checkpointing: ``ModelMixin.enable_gradient_checkpointing``
sets ``gradient_checkpointing`` and ``_gradient_checkpointing_func`` on every module
that has a ``gradient_checkpointing`` attribute; the blocks then run each layer (and the
resnet down/up-samplers) through that function while gradients are enabled.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from diffusers.models.attention_processor import Attention, AttnAddedKVProcessor2_0
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D, TemporalConvLayer
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from diffusers.models.upsampling import Upsample2D

# Show-1 hard-codes these for its TemporalConvLayer (GroupNorm(32, C), dropout 0.1),
# independently of the UNet's norm_num_groups.
TEMPORAL_CONV_GROUPS = 32
TEMPORAL_CONV_DROPOUT = 0.1


# --------------------------------------------------------------------------------------
# building helpers
# --------------------------------------------------------------------------------------
def _resnet(
    in_channels: int,
    out_channels: int,
    temb_channels: int,
    *,
    eps: float,
    groups: int,
    act_fn: str,
    time_scale_shift: str,
    output_scale_factor: float,
    skip_time_act: bool,
    dropout: float = 0.0,
    up: bool = False,
    down: bool = False,
) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=temb_channels,
        eps=eps,
        groups=groups,
        dropout=dropout,
        time_embedding_norm=time_scale_shift,
        non_linearity=act_fn,
        output_scale_factor=output_scale_factor,
        skip_time_act=skip_time_act,
        up=up,
        down=down,
    )


def _resnet_kwargs(eps, groups, act_fn, time_scale_shift, output_scale_factor, skip_time_act, dropout) -> dict:
    """The resnet settings every block passes on to :func:`_resnet`."""
    return dict(eps=eps, groups=groups, act_fn=act_fn, time_scale_shift=time_scale_shift,
                output_scale_factor=output_scale_factor, skip_time_act=skip_time_act, dropout=dropout)


class FrameConv3d(nn.Conv3d):
    """A ``Conv3d`` whose kernel spans frames only (``(k, 1, 1)``), computed as a 2D
    convolution over ``(batch, channels, frames, height * width)``: the same parameters
    and result, but PyTorch's CPU build has no fast path for 3D convolutions in float32
    (``slow_conv3d``), and this is about 2.5 times faster there (forward and backward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size[1:] != (1, 1) or self.stride != (1, 1, 1) or self.padding[1:] != (0, 0):
            return super().forward(x)
        b, c, f, h, w = x.shape
        y = nn.functional.conv2d(x.reshape(b, c, f, h * w), self.weight.squeeze(-1), self.bias,
                                 padding=(self.padding[0], 0), dilation=(self.dilation[0], 1), groups=self.groups)
        return y.view(b, y.shape[1], y.shape[2], h, w)


def _temporal_conv(channels: int) -> TemporalConvLayer:
    layer = TemporalConvLayer(
        channels, channels, dropout=TEMPORAL_CONV_DROPOUT, norm_num_groups=TEMPORAL_CONV_GROUPS
    )
    for module in layer.modules():
        if type(module) is nn.Conv3d:
            module.__class__ = FrameConv3d  # same parameters and state-dict names
    return layer


def _temporal_transformer(channels: int, num_heads: int, norm_num_groups: int) -> TransformerTemporalModel:
    """Temporal self-attention over frames: ``num_heads`` heads of ``channels // num_heads``.

    Both attentions of its transformer block are self-attentions
    (``double_self_attention``); it never sees the text states.
    """
    return TransformerTemporalModel(
        num_attention_heads=num_heads,
        attention_head_dim=channels // num_heads,
        in_channels=channels,
        num_layers=1,
        norm_num_groups=norm_num_groups,
        double_self_attention=True,
    )


def _added_kv_attention(
    channels: int,
    attention_head_dim: int,
    cross_attention_dim: int,
    norm_num_groups: int,
    only_cross_attention: bool,
    cross_attention_norm: str | None,
) -> Attention:
    """IF-style spatial attention: ``channels // attention_head_dim`` heads of
    ``attention_head_dim``. GroupNorm on the hidden states, (GroupNorm(32) on the text
    states when ``cross_attention_norm="group_norm"``), keys/values = concat(add_k/v_proj
    of the text states, to_k/v of the hidden states), output projection, residual."""
    return Attention(
        query_dim=channels,
        cross_attention_dim=channels,
        heads=channels // attention_head_dim,
        dim_head=attention_head_dim,
        added_kv_proj_dim=cross_attention_dim,
        norm_num_groups=norm_num_groups,
        bias=True,
        upcast_softmax=True,
        only_cross_attention=only_cross_attention,
        cross_attention_norm=cross_attention_norm,
        processor=AttnAddedKVProcessor2_0(),
    )


def _spatial_transformer(
    channels: int,
    num_heads: int,
    cross_attention_dim: int,
    norm_num_groups: int,
    num_layers: int,
    use_linear_projection: bool,
    only_cross_attention: bool,
    upcast_attention: bool,
) -> Transformer2DModel:
    """ZeroScope-style spatial transformer with text cross-attention:
    ``num_heads`` heads of ``channels // num_heads`` (Show-1 convention)."""
    return Transformer2DModel(
        num_attention_heads=num_heads,
        attention_head_dim=channels // num_heads,
        in_channels=channels,
        num_layers=num_layers,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=norm_num_groups,
        use_linear_projection=use_linear_projection,
        only_cross_attention=only_cross_attention,
        upcast_attention=upcast_attention,
    )


def checkpoint_call(module: nn.Module, fn, *args):
    """``fn(*args)`` under activation checkpointing: via the function that
    ``ModelMixin.enable_gradient_checkpointing`` installed on ``module``, or plain
    non-reentrant ``torch.utils.checkpoint`` if the flag was set by hand."""
    ckpt = getattr(module, "_gradient_checkpointing_func", None)
    if ckpt is not None:
        return ckpt(fn, *args)
    return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)


# --------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------
class Show1Block3D(nn.Module):
    """Common machinery of all Show-1 3D blocks.

    Subclasses fill (some of) ``resnets``, ``temp_convs``, ``attentions``,
    ``temp_attentions`` -- registered in that order, which fixes the state_dict order --
    and implement ``_layer``.
    """

    has_cross_attention = False

    def __init__(self) -> None:
        super().__init__()
        # Found and switched by ModelMixin.enable_gradient_checkpointing(), which also
        # sets `_gradient_checkpointing_func`.
        self.gradient_checkpointing = False

    def _add_simple_cross_attention(self, channels, num_layers, head_dim, cross_attention_dim, groups,
                                    only_cross_attention, cross_attention_norm) -> None:
        """``attentions`` + ``temp_attentions`` of the SimpleCrossAttn blocks. The head splits
        are reversed: spatial added-KV attention has C // d heads of d, the temporal
        transformer d heads of C // d."""
        self.attentions = nn.ModuleList([
            _added_kv_attention(channels, head_dim, cross_attention_dim, groups, only_cross_attention,
                                cross_attention_norm)
            for _ in range(num_layers)])
        self.temp_attentions = nn.ModuleList(
            [_temporal_transformer(channels, head_dim, groups) for _ in range(num_layers)])

    def _add_cross_attention(self, channels, num_layers, num_heads, cross_attention_dim, groups,
                             transformer_layers, use_linear_projection, only_cross_attention,
                             upcast_attention) -> None:
        """``attentions`` + ``temp_attentions`` of the CrossAttn (ZeroScope-style) blocks: both
        ``num_heads`` heads of C // num_heads."""
        self.attentions = nn.ModuleList([
            _spatial_transformer(channels, num_heads, cross_attention_dim, groups, transformer_layers,
                                 use_linear_projection, only_cross_attention, upcast_attention)
            for _ in range(num_layers)])
        self.temp_attentions = nn.ModuleList(
            [_temporal_transformer(channels, num_heads, groups) for _ in range(num_layers)])

    def _checkpointing(self) -> bool:
        return torch.is_grad_enabled() and self.gradient_checkpointing

    def _call(self, fn, *args):
        """Run ``fn(*args)``, through the gradient checkpointing function when enabled.

        ``args`` must be the tensors (or ``None``) that ``fn`` needs; everything else is
        bound into ``fn`` (e.g. with ``functools.partial``).
        """
        if self._checkpointing():
            return checkpoint_call(self, fn, *args)
        return fn(*args)

    def _run_layer(self, i: int, hidden_states, temb, encoder_hidden_states, num_frames, cross_attention_kwargs):
        fn = functools.partial(
            self._layer, i, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs
        )
        return self._call(fn, hidden_states, temb, encoder_hidden_states)

    # the per-layer work: resnet -> temporal conv -> spatial attn -> temporal attn
    def _layer(self, i, hidden_states, temb, encoder_hidden_states, *, num_frames, cross_attention_kwargs):
        hidden_states = self.resnets[i](hidden_states, temb)
        hidden_states = self.temp_convs[i](hidden_states, num_frames=num_frames)
        attentions = getattr(self, "attentions", None)
        if attentions is not None:
            hidden_states = self._spatial_attention(attentions[i], hidden_states, encoder_hidden_states, cross_attention_kwargs)
            hidden_states = self.temp_attentions[i](
                hidden_states, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs, return_dict=False
            )[0]
        return hidden_states

    @staticmethod
    def _spatial_attention(attn, hidden_states, encoder_hidden_states, cross_attention_kwargs):
        if isinstance(attn, Transformer2DModel):
            return attn(
                hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                cross_attention_kwargs=cross_attention_kwargs,
                return_dict=False,
            )[0]
        # added-KV Attention (the processor adds the residual itself)
        return attn(hidden_states, encoder_hidden_states=encoder_hidden_states, **(cross_attention_kwargs or {}))


# --------------------------------------------------------------------------------------
# down blocks
# --------------------------------------------------------------------------------------
class _DownBlock3D(Show1Block3D):
    """Shared forward of the down blocks. Returns ``(hidden_states, output_states)``."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        num_frames: int = 1,
        cross_attention_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        output_states = ()
        for i in range(len(self.resnets)):
            hidden_states = self._run_layer(
                i, hidden_states, temb, encoder_hidden_states, num_frames, cross_attention_kwargs
            )
            output_states += (hidden_states,)

        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                if isinstance(downsampler, ResnetBlock2D):
                    hidden_states = self._call(downsampler, hidden_states, temb)
                else:  # plain strided conv
                    hidden_states = downsampler(hidden_states)
            output_states += (hidden_states,)
        return hidden_states, output_states


class ResnetDownsampleBlock3D(_DownBlock3D):
    """resnet + temporal conv layers; downsampling by a ``ResnetBlock2D(down=True)``
    (2x2 average pool inside a resnet that also takes the time embedding)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_downsample: bool = True,
        skip_time_act: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [_resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, **rkw) for i in range(num_layers)]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self.downsamplers = (
            nn.ModuleList([_resnet(out_channels, out_channels, temb_channels, down=True, **rkw)]) if add_downsample else None
        )


class SimpleCrossAttnDownBlock3D(_DownBlock3D):
    """resnet + temporal conv + added-KV spatial attention + temporal attention layers;
    downsampling by a ``ResnetBlock2D(down=True)``."""

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        attention_head_dim: int = 1,
        cross_attention_dim: int = 1280,
        output_scale_factor: float = 1.0,
        add_downsample: bool = True,
        skip_time_act: bool = False,
        only_cross_attention: bool = False,
        cross_attention_norm: str | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [_resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, **rkw) for i in range(num_layers)]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self._add_simple_cross_attention(out_channels, num_layers, attention_head_dim, cross_attention_dim,
                                         resnet_groups, only_cross_attention, cross_attention_norm)
        self.downsamplers = (
            nn.ModuleList([_resnet(out_channels, out_channels, temb_channels, down=True, **rkw)]) if add_downsample else None
        )


class DownBlock3D(_DownBlock3D):
    """resnet + temporal conv layers; downsampling by a strided conv (``Downsample2D``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_downsample: bool = True,
        downsample_padding: int = 1,
        skip_time_act: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [_resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, **rkw) for i in range(num_layers)]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self.downsamplers = (
            nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=downsample_padding, name="op")]
            )
            if add_downsample
            else None
        )


class CrossAttnDownBlock3D(_DownBlock3D):
    """resnet + temporal conv + spatial ``Transformer2DModel`` + temporal attention
    layers; downsampling by a strided conv."""

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        transformer_layers_per_block: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        num_attention_heads: int = 1,
        cross_attention_dim: int = 1280,
        output_scale_factor: float = 1.0,
        downsample_padding: int = 1,
        add_downsample: bool = True,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
        skip_time_act: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [_resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, **rkw) for i in range(num_layers)]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self._add_cross_attention(out_channels, num_layers, num_attention_heads, cross_attention_dim, resnet_groups,
                                  transformer_layers_per_block, use_linear_projection, only_cross_attention,
                                  upcast_attention)
        self.downsamplers = (
            nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=downsample_padding, name="op")]
            )
            if add_downsample
            else None
        )


# --------------------------------------------------------------------------------------
# up blocks
# --------------------------------------------------------------------------------------
class _UpBlock3D(Show1Block3D):
    """Shared forward of the up blocks: each layer first concatenates the matching skip
    connection (popped from the end of ``res_hidden_states_tuple``) along channels."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        res_hidden_states_tuple: tuple[torch.Tensor, ...],
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        upsample_size: tuple[int, int] | None = None,
        num_frames: int = 1,
        cross_attention_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        for i in range(len(self.resnets)):
            res_hidden_states = res_hidden_states_tuple[-1]
            res_hidden_states_tuple = res_hidden_states_tuple[:-1]
            hidden_states = torch.cat([hidden_states, res_hidden_states], dim=1)
            hidden_states = self._run_layer(
                i, hidden_states, temb, encoder_hidden_states, num_frames, cross_attention_kwargs
            )

        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                if isinstance(upsampler, ResnetBlock2D):
                    # 2x nearest inside a resnet; always doubles the size
                    hidden_states = self._call(upsampler, hidden_states, temb)
                else:
                    hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states


def _up_resnet_channels(i: int, num_layers: int, in_channels: int, prev_output_channel: int, out_channels: int):
    """Input width of up-block resnet ``i``: previous output + skip connection."""
    res_skip_channels = in_channels if i == num_layers - 1 else out_channels
    resnet_in_channels = prev_output_channel if i == 0 else out_channels
    return resnet_in_channels + res_skip_channels


class ResnetUpsampleBlock3D(_UpBlock3D):
    """resnet + temporal conv layers; upsampling by a ``ResnetBlock2D(up=True)``."""

    def __init__(
        self,
        in_channels: int,
        prev_output_channel: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_upsample: bool = True,
        skip_time_act: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [
                _resnet(_up_resnet_channels(i, num_layers, in_channels, prev_output_channel, out_channels),
                        out_channels, temb_channels, **rkw)
                for i in range(num_layers)
            ]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self.upsamplers = (
            nn.ModuleList([_resnet(out_channels, out_channels, temb_channels, up=True, **rkw)]) if add_upsample else None
        )


class SimpleCrossAttnUpBlock3D(_UpBlock3D):
    """resnet + temporal conv + added-KV spatial attention + temporal attention layers;
    upsampling by a ``ResnetBlock2D(up=True)``."""

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        prev_output_channel: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        attention_head_dim: int = 1,
        cross_attention_dim: int = 1280,
        output_scale_factor: float = 1.0,
        add_upsample: bool = True,
        skip_time_act: bool = False,
        only_cross_attention: bool = False,
        cross_attention_norm: str | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [
                _resnet(_up_resnet_channels(i, num_layers, in_channels, prev_output_channel, out_channels),
                        out_channels, temb_channels, **rkw)
                for i in range(num_layers)
            ]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self._add_simple_cross_attention(out_channels, num_layers, attention_head_dim, cross_attention_dim,
                                         resnet_groups, only_cross_attention, cross_attention_norm)
        self.upsamplers = (
            nn.ModuleList([_resnet(out_channels, out_channels, temb_channels, up=True, **rkw)]) if add_upsample else None
        )


class UpBlock3D(_UpBlock3D):
    """resnet + temporal conv layers; upsampling by nearest 2x + conv (``Upsample2D``)."""

    def __init__(
        self,
        in_channels: int,
        prev_output_channel: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        output_scale_factor: float = 1.0,
        add_upsample: bool = True,
        skip_time_act: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [
                _resnet(_up_resnet_channels(i, num_layers, in_channels, prev_output_channel, out_channels),
                        out_channels, temb_channels, **rkw)
                for i in range(num_layers)
            ]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)]) if add_upsample else None
        )


class CrossAttnUpBlock3D(_UpBlock3D):
    """resnet + temporal conv + spatial ``Transformer2DModel`` + temporal attention
    layers; upsampling by nearest 2x + conv."""

    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        prev_output_channel: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        transformer_layers_per_block: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        num_attention_heads: int = 1,
        cross_attention_dim: int = 1280,
        output_scale_factor: float = 1.0,
        add_upsample: bool = True,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
        skip_time_act: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        self.resnets = nn.ModuleList(
            [
                _resnet(_up_resnet_channels(i, num_layers, in_channels, prev_output_channel, out_channels),
                        out_channels, temb_channels, **rkw)
                for i in range(num_layers)
            ]
        )
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels) for _ in range(num_layers)])
        self._add_cross_attention(out_channels, num_layers, num_attention_heads, cross_attention_dim, resnet_groups,
                                  transformer_layers_per_block, use_linear_projection, only_cross_attention,
                                  upcast_attention)
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)]) if add_upsample else None
        )


# --------------------------------------------------------------------------------------
# mid blocks
# --------------------------------------------------------------------------------------
class _MidBlock3D(Show1Block3D):
    """``resnets[0] -> temp_convs[0]``, then per layer ``i``:
    ``attentions[i] -> temp_attentions[i] -> resnets[i+1] -> temp_convs[i+1]``."""

    has_cross_attention = True

    def _first(self, hidden_states, temb, *, num_frames):
        hidden_states = self.resnets[0](hidden_states, temb)
        return self.temp_convs[0](hidden_states, num_frames=num_frames)

    def _layer(self, i, hidden_states, temb, encoder_hidden_states, *, num_frames, cross_attention_kwargs):
        hidden_states = self._spatial_attention(
            self.attentions[i], hidden_states, encoder_hidden_states, cross_attention_kwargs
        )
        hidden_states = self.temp_attentions[i](
            hidden_states, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs, return_dict=False
        )[0]
        hidden_states = self.resnets[i + 1](hidden_states, temb)
        return self.temp_convs[i + 1](hidden_states, num_frames=num_frames)

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        num_frames: int = 1,
        cross_attention_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        hidden_states = self._call(functools.partial(self._first, num_frames=num_frames), hidden_states, temb)
        for i in range(len(self.attentions)):
            hidden_states = self._run_layer(
                i, hidden_states, temb, encoder_hidden_states, num_frames, cross_attention_kwargs
            )
        return hidden_states


class UNetMidBlock3DSimpleCrossAttn(_MidBlock3D):
    """IF-style mid block: resnets, temporal convs, added-KV spatial attention
    (``C // d`` heads of ``d``) and temporal attention (``d`` heads of ``C // d``)."""

    def __init__(
        self,
        in_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        attention_head_dim: int = 1,
        output_scale_factor: float = 1.0,
        cross_attention_dim: int = 1280,
        skip_time_act: bool = False,
        only_cross_attention: bool = False,
        cross_attention_norm: str | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        c = in_channels
        self.resnets = nn.ModuleList([_resnet(c, c, temb_channels, **rkw) for _ in range(num_layers + 1)])
        self.temp_convs = nn.ModuleList([_temporal_conv(c) for _ in range(num_layers + 1)])
        self._add_simple_cross_attention(c, num_layers, attention_head_dim, cross_attention_dim, resnet_groups,
                                         only_cross_attention, cross_attention_norm)


class UNetMidBlock3DCrossAttn(_MidBlock3D):
    """ZeroScope-style mid block: resnets, temporal convs, spatial
    ``Transformer2DModel`` and temporal attention (both ``num_attention_heads`` heads of
    ``C // num_attention_heads``)."""

    def __init__(
        self,
        in_channels: int,
        temb_channels: int,
        num_layers: int = 1,
        transformer_layers_per_block: int = 1,
        resnet_eps: float = 1e-6,
        resnet_time_scale_shift: str = "default",
        resnet_act_fn: str = "swish",
        resnet_groups: int = 32,
        num_attention_heads: int = 1,
        output_scale_factor: float = 1.0,
        cross_attention_dim: int = 1280,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
        skip_time_act: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        rkw = _resnet_kwargs(resnet_eps, resnet_groups, resnet_act_fn, resnet_time_scale_shift,
                             output_scale_factor, skip_time_act, dropout)
        c = in_channels
        self.resnets = nn.ModuleList([_resnet(c, c, temb_channels, **rkw) for _ in range(num_layers + 1)])
        self.temp_convs = nn.ModuleList([_temporal_conv(c) for _ in range(num_layers + 1)])
        self._add_cross_attention(c, num_layers, num_attention_heads, cross_attention_dim, resnet_groups,
                                  transformer_layers_per_block, use_linear_projection, False, upcast_attention)


DOWN_BLOCKS = {
    "ResnetDownsampleBlock3D": ResnetDownsampleBlock3D,
    "SimpleCrossAttnDownBlock3D": SimpleCrossAttnDownBlock3D,
    "DownBlock3D": DownBlock3D,
    "CrossAttnDownBlock3D": CrossAttnDownBlock3D,
}
UP_BLOCKS = {
    "ResnetUpsampleBlock3D": ResnetUpsampleBlock3D,
    "SimpleCrossAttnUpBlock3D": SimpleCrossAttnUpBlock3D,
    "UpBlock3D": UpBlock3D,
    "CrossAttnUpBlock3D": CrossAttnUpBlock3D,
}
MID_BLOCKS = {
    "UNetMidBlock3DSimpleCrossAttn": UNetMidBlock3DSimpleCrossAttn,
    "UNetMidBlock3DCrossAttn": UNetMidBlock3DCrossAttn,
}
