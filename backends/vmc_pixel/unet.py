"""Show-1's video UNet as a diffusers model.

An independent implementation of the architecture of
``showone.models.unet_3d_condition.UNet3DConditionModel`` (showlab/Show-1), which is
not part of diffusers. It loads the four Show-1 stage checkpoints (``base``,
``interpolation``, ``sr1``: DeepFloyd-IF-style pixel UNets; ``sr2``: a ZeroScope-style
latent UNet) with strict key matching, and is checked against outputs of the original
code (see ``tests/test_show1_unet.py``).

Conventions
-----------
* Video tensors are ``(batch, channels, frames, height, width)``. Internally frames are
  folded into the batch, ``(B, C, F, H, W) -> (B, F, C, H, W) -> (B*F, C, H, W)`` (frame
  index fastest); time and text conditioning are ``repeat_interleave``-d ``F`` times.
* Attention uses PyTorch's scaled-dot-product attention (diffusers' ``*2_0``
  processors) by default.
* ``enable_gradient_checkpointing()`` really checkpoints every block layer (the
  original silently did nothing).

The block structure and the head-split conventions are documented in
:mod:`vmc_pixel.blocks`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.utils.checkpoint
from torch import nn

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.activations import get_activation
from diffusers.models.attention_processor import AttentionProcessor
from diffusers.models.embeddings import TextTimeEmbedding, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from diffusers.utils import BaseOutput

from .blocks import DOWN_BLOCKS, MID_BLOCKS, UP_BLOCKS, Show1Block3D, checkpoint_call

__all__ = ["Show1UNet3DConditionModel", "Show1UNet3DConditionOutput"]


@dataclass
class Show1UNet3DConditionOutput(BaseOutput):
    """Output of :class:`Show1UNet3DConditionModel`.

    Args:
        sample: ``(batch, out_channels, frames, height, width)`` prediction.
    """

    sample: torch.Tensor


def _per_block(value, n: int, name: str) -> list:
    """Broadcast an int/bool/str config value to one value per block."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"`{name}` must have one entry per block ({n}), got {value}.")
        return list(value)
    return [value] * n


class Show1UNet3DConditionModel(ModelMixin, ConfigMixin):
    r"""Show-1 video UNet (all four stages), a conditional 3D UNet.

    Takes a noisy video ``sample`` of shape ``(batch, in_channels, frames, height,
    width)``, a timestep and text encoder states and returns a
    ``(batch, out_channels, frames, height, width)`` prediction.

    The constructor arguments are exactly those of Show-1's class (as stored in the
    checkpoints' ``unet/config.json``, including the misspelled ``transfromer_in_opt``).
    Relevant ones:

    * ``down_block_types`` / ``up_block_types``: ``ResnetDownsampleBlock3D``,
      ``SimpleCrossAttnDownBlock3D``, ``DownBlock3D``, ``CrossAttnDownBlock3D`` /
      ``ResnetUpsampleBlock3D``, ``SimpleCrossAttnUpBlock3D``, ``UpBlock3D``,
      ``CrossAttnUpBlock3D``; ``mid_block_type``: ``UNetMidBlock3DSimpleCrossAttn``,
      ``UNetMidBlock3DCrossAttn`` or ``None``.
    * ``encoder_hid_dim_type="text_proj"``: the text states (``encoder_hid_dim`` wide) are
      projected to ``cross_attention_dim`` by ``encoder_hid_proj``.
    * ``addition_embed_type="text"``: the raw text states are also attention-pooled
      (``TextTimeEmbedding``) and added to the time embedding.
    * ``class_embed_type="timestep"``: ``class_labels`` (sr1's noise-augmentation level)
      go through the sinusoidal projection and ``class_embedding`` and are added.
    * ``time_embedding_act_fn``: activation applied once to the summed embedding
      (with ``resnet_skip_time_act`` the resnets then project it without activating).
    * ``transfromer_in_opt``: a temporal transformer (8 heads x 64) right after
      ``conv_in`` (sr2).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = [
        "ResnetBlock2D",
        "TemporalConvLayer",
        "Attention",
        "BasicTransformerBlock",
        "Transformer2DModel",
        "TransformerTemporalModel",
    ]

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlock3D",
            "CrossAttnDownBlock3D",
            "CrossAttnDownBlock3D",
            "DownBlock3D",
        ),
        mid_block_type: str | None = "UNetMidBlock3DCrossAttn",
        up_block_types: tuple[str, ...] = (
            "UpBlock3D",
            "CrossAttnUpBlock3D",
            "CrossAttnUpBlock3D",
            "CrossAttnUpBlock3D",
        ),
        only_cross_attention: bool | tuple[bool, ...] = False,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int | tuple[int, ...] = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int | tuple[int, ...] = 1024,
        transformer_layers_per_block: int | tuple[int, ...] = 1,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        attention_head_dim: int | tuple[int, ...] = 64,
        num_attention_heads: int | tuple[int, ...] | None = None,
        dual_cross_attention: bool = False,
        use_linear_projection: bool = False,
        class_embed_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        num_class_embeds: int | None = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        resnet_skip_time_act: bool = False,
        resnet_out_scale_factor: float = 1.0,
        time_embedding_type: str = "positional",
        time_embedding_dim: int | None = None,
        time_embedding_act_fn: str | None = None,
        timestep_post_act: str | None = None,
        time_cond_proj_dim: int | None = None,
        conv_in_kernel: int = 3,
        conv_out_kernel: int = 3,
        projection_class_embeddings_input_dim: int | None = None,
        class_embeddings_concat: bool = False,
        mid_block_only_cross_attention: bool | None = None,
        cross_attention_norm: str | None = None,
        addition_embed_type_num_heads: int = 64,
        transfromer_in_opt: bool = False,
        temporal_frame_positions: int = 0,
    ):
        super().__init__()

        n_blocks = len(down_block_types)
        if len(up_block_types) != n_blocks or len(block_out_channels) != n_blocks:
            raise ValueError("down_block_types, up_block_types and block_out_channels must have the same length.")
        if dual_cross_attention:
            raise NotImplementedError("dual_cross_attention is not supported (Show-1 does not use it).")
        if time_embedding_type != "positional":
            raise NotImplementedError(f"time_embedding_type={time_embedding_type!r} is not supported.")
        if addition_embed_type not in (None, "text"):
            raise NotImplementedError(f"addition_embed_type={addition_embed_type!r} is not supported.")
        if encoder_hid_dim_type is None and encoder_hid_dim is not None:
            encoder_hid_dim_type = "text_proj"
            self.register_to_config(encoder_hid_dim_type=encoder_hid_dim_type)
        if encoder_hid_dim_type not in (None, "text_proj"):
            raise NotImplementedError(f"encoder_hid_dim_type={encoder_hid_dim_type!r} is not supported.")
        if encoder_hid_dim_type is not None and encoder_hid_dim is None:
            raise ValueError("`encoder_hid_dim` is required with `encoder_hid_dim_type`.")

        self.sample_size = sample_size

        # Per-block settings. As in diffusers' UNet2DConditionModel, `num_attention_heads`
        # defaults to `attention_head_dim` (a historical naming mix-up): the CrossAttn
        # blocks use it as their head COUNT, the SimpleCrossAttn blocks use
        # `attention_head_dim` as the spatial head SIZE (see blocks.py).
        num_attention_heads = num_attention_heads or attention_head_dim
        only_cross_attention_b = _per_block(only_cross_attention, n_blocks, "only_cross_attention")
        layers_b = _per_block(layers_per_block, n_blocks, "layers_per_block")
        head_dim_b = _per_block(attention_head_dim, n_blocks, "attention_head_dim")
        heads_b = _per_block(num_attention_heads, n_blocks, "num_attention_heads")
        cross_dim_b = _per_block(cross_attention_dim, n_blocks, "cross_attention_dim")
        tlayers_b = _per_block(transformer_layers_per_block, n_blocks, "transformer_layers_per_block")
        if mid_block_only_cross_attention is None:
            mid_block_only_cross_attention = only_cross_attention if isinstance(only_cross_attention, bool) else False

        # ---- input -------------------------------------------------------------------
        self.conv_in = nn.Conv2d(
            in_channels, block_out_channels[0], kernel_size=conv_in_kernel, padding=(conv_in_kernel - 1) // 2
        )
        # sr2: temporal transformer right after conv_in, hard-coded to 8 heads x 64.
        # (Registered here, before the embeddings, to give the checkpoint's key order.)
        if transfromer_in_opt:
            self.transformer_in = TransformerTemporalModel(
                num_attention_heads=8,
                attention_head_dim=64,
                in_channels=block_out_channels[0],
                num_layers=1,
                norm_num_groups=norm_num_groups,
            )
        else:
            self.transformer_in = None

        # ---- time / class / text embeddings -------------------------------------------
        time_embed_dim = time_embedding_dim or block_out_channels[0] * 4
        timestep_input_dim = block_out_channels[0]
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(
            timestep_input_dim,
            time_embed_dim,
            act_fn=act_fn,
            post_act_fn=timestep_post_act,
            cond_proj_dim=time_cond_proj_dim,
        )

        if encoder_hid_dim_type == "text_proj":
            if isinstance(cross_attention_dim, (list, tuple)):
                raise ValueError("encoder_hid_dim_type='text_proj' needs a single int cross_attention_dim.")
            self.encoder_hid_proj = nn.Linear(encoder_hid_dim, cross_attention_dim)
        else:
            self.encoder_hid_proj = None

        if class_embed_type is None and num_class_embeds is not None:
            self.class_embedding = nn.Embedding(num_class_embeds, time_embed_dim)
        elif class_embed_type == "timestep":
            self.class_embedding = TimestepEmbedding(timestep_input_dim, time_embed_dim, act_fn=act_fn)
        elif class_embed_type == "identity":
            self.class_embedding = nn.Identity(time_embed_dim, time_embed_dim)
        elif class_embed_type == "projection":
            if projection_class_embeddings_input_dim is None:
                raise ValueError("class_embed_type='projection' requires projection_class_embeddings_input_dim.")
            self.class_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim)
        elif class_embed_type == "simple_projection":
            if projection_class_embeddings_input_dim is None:
                raise ValueError("class_embed_type='simple_projection' requires projection_class_embeddings_input_dim.")
            self.class_embedding = nn.Linear(projection_class_embeddings_input_dim, time_embed_dim)
        elif class_embed_type is None:
            self.class_embedding = None
        else:
            raise ValueError(f"Unknown class_embed_type {class_embed_type!r}.")

        if addition_embed_type == "text":
            text_dim = encoder_hid_dim if encoder_hid_dim is not None else cross_dim_b[0]
            # LayerNorm -> attention pooling -> Linear -> LayerNorm
            self.add_embedding = TextTimeEmbedding(text_dim, time_embed_dim, num_heads=addition_embed_type_num_heads)
        else:
            self.add_embedding = None

        self.time_embed_act = get_activation(time_embedding_act_fn) if time_embedding_act_fn is not None else None

        blocks_time_embed_dim = time_embed_dim * 2 if class_embeddings_concat else time_embed_dim

        # ---- blocks ---------------------------------------------------------------------
        # (down_blocks and up_blocks are registered before mid_block: checkpoint key order)
        self.down_blocks = nn.ModuleList([])
        self.up_blocks = nn.ModuleList([])

        common = dict(
            temb_channels=blocks_time_embed_dim,
            resnet_eps=norm_eps,
            resnet_act_fn=act_fn,
            resnet_groups=norm_num_groups,
            resnet_time_scale_shift=resnet_time_scale_shift,
            skip_time_act=resnet_skip_time_act,
        )

        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel = output_channel
            output_channel = block_out_channels[i]
            is_final_block = i == n_blocks - 1
            self.down_blocks.append(
                self._make_block(
                    DOWN_BLOCKS, block_type,
                    in_channels=input_channel,
                    out_channels=output_channel,
                    num_layers=layers_b[i],
                    add_downsample=not is_final_block,
                    downsample_padding=downsample_padding,
                    output_scale_factor=resnet_out_scale_factor,
                    attention_head_dim=head_dim_b[i],
                    num_attention_heads=heads_b[i],
                    cross_attention_dim=cross_dim_b[i],
                    transformer_layers_per_block=tlayers_b[i],
                    use_linear_projection=use_linear_projection,
                    only_cross_attention=only_cross_attention_b[i],
                    upcast_attention=upcast_attention,
                    cross_attention_norm=cross_attention_norm,
                    **common,
                )
            )

        if mid_block_type is None:
            self.mid_block = None
        else:
            self.mid_block = self._make_block(
                MID_BLOCKS, mid_block_type,
                in_channels=block_out_channels[-1],
                output_scale_factor=mid_block_scale_factor,
                attention_head_dim=head_dim_b[-1],
                num_attention_heads=heads_b[-1],
                cross_attention_dim=cross_dim_b[-1],
                transformer_layers_per_block=tlayers_b[-1],
                use_linear_projection=use_linear_projection,
                only_cross_attention=mid_block_only_cross_attention,
                upcast_attention=upcast_attention,
                cross_attention_norm=cross_attention_norm,
                **common,
            )

        self.num_upsamplers = 0
        reversed_channels = list(reversed(block_out_channels))
        reversed_layers = list(reversed(layers_b))
        reversed_head_dim = list(reversed(head_dim_b))
        reversed_heads = list(reversed(heads_b))
        reversed_cross_dim = list(reversed(cross_dim_b))
        reversed_tlayers = list(reversed(tlayers_b))
        reversed_only_cross = list(reversed(only_cross_attention_b))
        output_channel = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            is_final_block = i == n_blocks - 1
            prev_output_channel = output_channel
            output_channel = reversed_channels[i]
            input_channel = reversed_channels[min(i + 1, n_blocks - 1)]
            add_upsample = not is_final_block
            if add_upsample:
                self.num_upsamplers += 1
            self.up_blocks.append(
                self._make_block(
                    UP_BLOCKS, block_type,
                    in_channels=input_channel,
                    prev_output_channel=prev_output_channel,
                    out_channels=output_channel,
                    num_layers=reversed_layers[i] + 1,
                    add_upsample=add_upsample,
                    output_scale_factor=resnet_out_scale_factor,
                    attention_head_dim=reversed_head_dim[i],
                    num_attention_heads=reversed_heads[i],
                    cross_attention_dim=reversed_cross_dim[i],
                    transformer_layers_per_block=reversed_tlayers[i],
                    use_linear_projection=use_linear_projection,
                    only_cross_attention=reversed_only_cross[i],
                    upcast_attention=upcast_attention,
                    cross_attention_norm=cross_attention_norm,
                    **common,
                )
            )

        # ---- output ---------------------------------------------------------------------
        if norm_num_groups is not None:
            self.conv_norm_out = nn.GroupNorm(num_channels=block_out_channels[0], num_groups=norm_num_groups, eps=norm_eps)
            self.conv_act = get_activation(act_fn)
        else:
            self.conv_norm_out = None
            self.conv_act = None
        self.conv_out = nn.Conv2d(
            block_out_channels[0], out_channels, kernel_size=conv_out_kernel, padding=(conv_out_kernel - 1) // 2
        )

        # Lets enable_gradient_checkpointing() reach the top-level transformer_in too.
        self.gradient_checkpointing = False
        # Not Show-1's: sinusoidal frame positions for the temporal attention, up to this many
        # frames, behind a learned gain that starts at zero (vmc_pixel.frame_positions); 0: none
        if temporal_frame_positions:
            from .frame_positions import add_frame_positions

            add_frame_positions(self, int(temporal_frame_positions))

    @staticmethod
    def _make_block(registry: dict, block_type: str, **kwargs) -> Show1Block3D:
        """Instantiate ``registry[block_type]`` with the subset of ``kwargs`` it accepts."""
        if block_type not in registry:
            raise ValueError(f"Unknown block type {block_type!r}; expected one of {sorted(registry)}.")
        cls = registry[block_type]
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in kwargs.items() if k in accepted})

    # ------------------------------------------------------------------------------------
    # attention processors
    # ------------------------------------------------------------------------------------
    @property
    def attn_processors(self) -> dict[str, AttentionProcessor]:
        """All attention processors of the model, indexed by ``<module name>.processor``."""
        return {
            f"{name}.processor": module.get_processor()
            for name, module in self.named_modules()
            if hasattr(module, "get_processor")
        }

    def set_attn_processor(self, processor: AttentionProcessor | dict[str, AttentionProcessor]) -> None:
        """Set one processor for every attention layer, or a dict keyed like
        :attr:`attn_processors`."""
        names = [name for name, module in self.named_modules() if hasattr(module, "set_processor")]
        if isinstance(processor, dict) and len(processor) != len(names):
            raise ValueError(f"Expected {len(names)} processors, got {len(processor)}.")
        for name, module in self.named_modules():
            if hasattr(module, "set_processor"):
                module.set_processor(processor if not isinstance(processor, dict) else processor[f"{name}.processor"])

    # ------------------------------------------------------------------------------------
    # gradient checkpointing
    # ------------------------------------------------------------------------------------
    def _set_gradient_checkpointing(
        self, enable: bool = True, gradient_checkpointing_func: Callable = torch.utils.checkpoint.checkpoint
    ) -> None:
        # diffusers sets `gradient_checkpointing` (+ `_gradient_checkpointing_func`) on
        # every module that has the attribute. Our blocks checkpoint whole layers; the
        # diffusers Transformer2DModels inside them would checkpoint their own blocks
        # again (recomputing them a third time), so keep those nested flags off.
        super()._set_gradient_checkpointing(enable=enable, gradient_checkpointing_func=gradient_checkpointing_func)
        for block in self.modules():
            if isinstance(block, Show1Block3D):
                for sub in block.modules():
                    if sub is not block and hasattr(sub, "gradient_checkpointing"):
                        sub.gradient_checkpointing = False

    # ------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        down_block_additional_residuals: tuple[torch.Tensor, ...] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Show1UNet3DConditionOutput | tuple[torch.Tensor]:
        r"""Denoise a video.

        Args:
            sample: noisy input, ``(batch, in_channels, frames, height, width)``.
            timestep: diffusion step: a number, a 0-d tensor, or a ``(batch,)``/``(1,)``
                tensor (broadcast to the batch).
            encoder_hidden_states: text encoder states ``(batch, seq_len, dim)``:
                ``dim = encoder_hid_dim`` (raw T5 states, base/interp/sr1) or
                ``cross_attention_dim`` (sr2). Shared by all frames of a video.
            class_labels: ``(batch,)`` class / noise-augmentation levels for
                class-conditioned configs (sr1).
            timestep_cond: optional ``(batch, time_cond_proj_dim)`` extra time conditioning.
            cross_attention_kwargs: passed on to the attention processors.
            down_block_additional_residuals: optional residuals added to the skip
                connections, frame-folded ``(batch * frames, C, h, w)`` (ControlNet style).
            mid_block_additional_residual: optional residual added to the mid block
                output, frame-folded.
            return_dict: return a :class:`Show1UNet3DConditionOutput` instead of a tuple.

        Returns:
            ``Show1UNet3DConditionOutput(sample=...)`` or ``(sample,)``, where ``sample``
            is ``(batch, out_channels, frames, height, width)``.
        """
        if sample.ndim != 5:
            raise ValueError(f"`sample` must be (batch, channels, frames, height, width), got {tuple(sample.shape)}.")
        batch, _, num_frames, height, width = sample.shape

        # Upsampling by Upsample2D needs an explicit size when H/W are not multiples of
        # the overall up factor (the resnet up-samplers always double).
        overall_up_factor = 2**self.num_upsamplers
        forward_upsample_size = height % overall_up_factor != 0 or width % overall_up_factor != 0

        # 1. time (+ class, + pooled text) embedding, shape (batch, time_embed_dim)
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            dtype = torch.float64 if isinstance(timestep, float) else torch.int64
            if sample.device.type == "mps" and dtype == torch.float64:
                dtype = torch.float32
            timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
        elif timesteps.ndim == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps.expand(batch)
        # Timesteps always returns float32; cast to the model's compute dtype
        t_emb = self.time_proj(timesteps).to(dtype=sample.dtype)
        emb = self.time_embedding(t_emb, timestep_cond)

        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels must be given for a class-conditioned UNet.")
            if self.config.class_embed_type == "timestep":
                if torch.is_tensor(class_labels) and class_labels.ndim == 0:
                    class_labels = class_labels[None]
                if torch.is_tensor(class_labels) and class_labels.shape[0] == 1 and batch > 1:
                    class_labels = class_labels.expand(batch)
                class_labels = self.time_proj(class_labels).to(dtype=sample.dtype)
            class_emb = self.class_embedding(class_labels).to(dtype=sample.dtype)
            emb = torch.cat([emb, class_emb], dim=-1) if self.config.class_embeddings_concat else emb + class_emb

        if self.add_embedding is not None:  # "text": attention-pooled raw text states
            emb = emb + self.add_embedding(encoder_hidden_states)

        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)

        if self.encoder_hid_proj is not None:
            encoder_hidden_states = self.encoder_hid_proj(encoder_hidden_states)

        # one copy per frame, matching the frame-folded batch (frame index fastest)
        emb = emb.repeat_interleave(num_frames, dim=0)
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(num_frames, dim=0)

        # 2. fold frames into the batch: (B, C, F, H, W) -> (B*F, C, H, W)
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        sample = sample.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, -1, height, width)
        sample = self.conv_in(sample)

        if self.transformer_in is not None:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                sample = checkpoint_call(
                    self,
                    lambda x: self.transformer_in(
                        x, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs, return_dict=False
                    )[0],
                    sample,
                )
            else:
                sample = self.transformer_in(
                    sample, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs, return_dict=False
                )[0]

        # 3. down
        down_block_res_samples = (sample,)
        for block in self.down_blocks:
            sample, res_samples = block(
                sample,
                temb=emb,
                encoder_hidden_states=encoder_hidden_states if block.has_cross_attention else None,
                num_frames=num_frames,
                cross_attention_kwargs=cross_attention_kwargs,
            )
            down_block_res_samples += res_samples

        if down_block_additional_residuals is not None:
            if len(down_block_additional_residuals) != len(down_block_res_samples):
                raise ValueError("down_block_additional_residuals must match the number of skip connections.")
            down_block_res_samples = tuple(
                s + r for s, r in zip(down_block_res_samples, down_block_additional_residuals)
            )

        # 4. mid
        if self.mid_block is not None:
            sample = self.mid_block(
                sample,
                temb=emb,
                encoder_hidden_states=encoder_hidden_states,
                num_frames=num_frames,
                cross_attention_kwargs=cross_attention_kwargs,
            )
        if mid_block_additional_residual is not None:
            sample = sample + mid_block_additional_residual

        # 5. up
        for i, block in enumerate(self.up_blocks):
            is_final_block = i == len(self.up_blocks) - 1
            n_res = len(block.resnets)
            res_samples = down_block_res_samples[-n_res:]
            down_block_res_samples = down_block_res_samples[:-n_res]
            upsample_size = down_block_res_samples[-1].shape[2:] if (forward_upsample_size and not is_final_block) else None
            sample = block(
                sample,
                res_hidden_states_tuple=res_samples,
                temb=emb,
                encoder_hidden_states=encoder_hidden_states if block.has_cross_attention else None,
                upsample_size=upsample_size,
                num_frames=num_frames,
                cross_attention_kwargs=cross_attention_kwargs,
            )

        # 6. out
        if self.conv_norm_out is not None:
            sample = self.conv_norm_out(sample)
            sample = self.conv_act(sample)
        sample = self.conv_out(sample)

        # unfold: (B*F, C, H, W) -> (B, C, F, H, W)
        sample = sample.reshape(batch, num_frames, *sample.shape[1:]).permute(0, 2, 1, 3, 4)

        if not return_dict:
            return (sample,)
        return Show1UNet3DConditionOutput(sample=sample)
