"""What the latent-space backends (``zeroscope``, ``animatediff``) share: a diffusers video
UNet over VAE latents, a CLIP text encoder, files from the hub or a local folder.

A shared base package, not a plugin: it registers no backend, and it is one of the two
packages (with :mod:`vmc_pixel`) that registered backends may import besides ``vmc_cli``
(tests/test_imports.py checks that no registered backend imports another). The method
(tuning, inversion, sampling) stays in ``vmc_cli``; this class only maps clips to latents
and back, encodes prompts and predicts epsilon.

- Clips: ``frames_to_model`` encodes each frame with the VAE (the mean of its latent
  distribution, times the VAE's scaling factor) into (1, 4, F, h, w); ``model_to_frames``
  decodes a few frames at a time (``decode_chunk``) to bound memory.
- Prediction: what the scheduler config states; the core turns a v-prediction model's output
  into epsilon (eps = sqrt(abar) v + sqrt(1 - abar) x_t, ``vmc_cli.method.schedule``), and its
  samplers are told they get epsilon.
- Memory: float16 by default on CUDA (the tuned temporal q/k/v kept in float32 as master
  weights, the UNet under autocast), SDPA attention (diffusers' default processors), and two
  declared options (:func:`speed_options`): ``offload`` keeps the text encoder and the VAE in
  CPU memory while the UNet runs (accelerate's ``cpu_offload``), ``gradient_checkpointing``
  checkpoints the UNet's activations while tuning; each backend names their variables
  (``VMC_<NAME>_OFFLOAD``, ``VMC_<NAME>_GRADIENT_CHECKPOINTING``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmc_cli.backend import Backend
from vmc_cli.errors import VmcError


#: the commands whose runs load the key-frame model to run it
RUNS = ("tune", "invert", "generate")


def revision_option(name: str, env: str, what: str = "the model", **kwargs):
    """A declared hub revision (``--option NAME=REV`` or ``env``): a backend pins the commit it
    loads for the ids it knows, and this overrides the pin (``main``: the newest)."""
    from vmc_cli.backend_options import BackendOption

    return BackendOption(name, env=env, help=f"the hub revision of {what} (default: the commit vmc pins for a "
                                             "known id, else main)", **kwargs)


def speed_options(name: str) -> tuple:
    """The memory switches every latent backend declares, with its variables
    ``VMC_<NAME>_OFFLOAD`` and ``VMC_<NAME>_GRADIENT_CHECKPOINTING``."""
    from vmc_cli.backend_options import BackendOption

    return (
        BackendOption("offload", bool, default=False, env=f"VMC_{name}_OFFLOAD", commands=RUNS,
                      help="keep the text encoder and the VAE in CPU memory while the key-frame model runs"),
        BackendOption("gradient_checkpointing", bool, default=False, env=f"VMC_{name}_GRADIENT_CHECKPOINTING",
                      commands=("tune",), help="recompute the key-frame model's activations in the backward pass "
                                               "(less memory, slower tuning)"),
    )


def checkpoint_blocks(unet) -> None:
    """Activation checkpointing for a UNet whose class has none: each down, mid and up block
    runs under ``torch.utils.checkpoint`` while training (recomputed in the backward pass),
    as it is."""
    import functools

    import torch
    from torch.utils.checkpoint import checkpoint

    blocks = [*unet.down_blocks, *([unet.mid_block] if unet.mid_block is not None else []), *unet.up_blocks]
    for block in blocks:
        forward = block.forward

        @functools.wraps(forward)
        def run(*args, _forward=forward, _block=block, **kwargs):
            if _block.training and torch.is_grad_enabled():
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = run
        block.vmc_checkpointed = True  # (not diffusers' own flag, which would switch on its partial one)


def is_hub_id(text: str) -> bool:
    """'owner/name' that is not an existing path."""
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not Path(text).exists() and not text.startswith((".", "~"))


def local_folder(folder: Path, spec, what: str, hint: str | None = None) -> dict:
    """``{"id", "revision", "source": "local"}`` of a model ``folder`` in the hub's layout for
    ``spec`` (a :class:`vmc_cli.models.repos.RepoSpec`); the revision is the hash of its configs.
    One-line error naming the first missing files when ``folder`` lacks any (``what``
    completes "is not ...")."""
    from vmc_cli.models.repos import config_hash, missing_files

    lacks = missing_files(folder, spec, need_index=False)
    if lacks:
        raise VmcError(f"{folder} is not {what} (lacks {', '.join(lacks[:4])})", hint)
    return {"id": str(folder.resolve()), "revision": config_hash(folder, spec), "source": "local"}


class LatentVideoBackend(Backend):
    """A key-frame model over VAE latents. Subclasses load ``_unet``, ``_vae``, ``_text_encoder``,
    ``_tokenizer`` and ``_scheduler_config`` (see ``load_parts``)."""

    #: exported LoRA files name the key-frame model as diffusers' pipelines do (``vmc export``)
    lora_prefix = "unet"

    #: environment prefix for the speed switches (VMC_<PREFIX>_OFFLOAD, ..._GRADIENT_CHECKPOINTING)
    env_prefix = "LATENT"
    #: frames decoded by the VAE at once
    decode_chunk = 4
    #: key-frame sizes must be multiples of this (VAE factor x UNet downsampling)
    size_multiple = 64

    def __init__(self):
        import torch

        self._unet = None
        self._vae = None
        self._text_encoder = None
        self._tokenizer = None
        self._scheduler_config: dict | None = None
        self._embeddings: dict[str, Any] = {}
        self._info: dict[str, dict] = {}
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.offload = False
        self.gradient_checkpointing = False

    # -- loading ---------------------------------------------------------------
    @property
    def oom_hint(self) -> str:
        """What to try when it runs out of GPU memory: its own switches."""
        env = {o.name: o.env for o in self.options}
        return (f"try --dtype float16, {env.get('offload')}=1, or "
                f"{env.get('gradient_checkpointing')}=1 for tuning")

    def speed_switches(self, offload=None, gradient_checkpointing=None) -> None:
        """The ``offload`` and ``gradient_checkpointing`` options (given, else their variables)."""
        self.offload = self.setting("offload", offload)
        self.gradient_checkpointing = self.setting("gradient_checkpointing", gradient_checkpointing)

    def load_parts(self, folder: Path, *, unet_loader, dtype, text_folder: Path | None = None) -> None:
        """UNet (``unet_loader(folder, dtype)``), VAE, CLIP text encoder and tokenizer, and the
        scheduler config, from a folder in the hub's layout."""
        import json

        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        from vmc_cli.models.quiet import no_progress_bars, quiet_libraries

        text_folder = text_folder or folder
        with quiet_libraries(), no_progress_bars():
            unet = unet_loader(folder, dtype)
            vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype)
            text_encoder = CLIPTextModel.from_pretrained(text_folder / "text_encoder", dtype=dtype)
            tokenizer = CLIPTokenizer.from_pretrained(text_folder / "tokenizer")
        self.use_parts(unet, vae, text_encoder, tokenizer,
                       json.loads((folder / "scheduler" / "scheduler_config.json").read_text()), dtype)

    def use_parts(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, dtype) -> None:
        """Take loaded models (in ``dtype``) as the backend's: frozen, the tuned q/k/v in float32,
        the UNet on the device, the VAE and text encoder there or offloaded, as configured.
        (``load_parts`` reads them from files; ``benchmarks/latent_gpu.py`` passes random ones.)"""
        from vmc_cli.method.tuning import keep_master_weights

        self._unet = unet.eval().requires_grad_(False)
        self._vae = vae.eval().requires_grad_(False)
        self._text_encoder = text_encoder.eval().requires_grad_(False)
        self._tokenizer = tokenizer
        self._scheduler_config = dict(scheduler_config)
        # fp32 master weights for what tuning trains (the temporal q/k/v); the UNet runs under autocast
        keep_master_weights(self._unet, dtype, self.temporal_attention_marker)
        if self.gradient_checkpointing:
            # Whole blocks, for both UNets: diffusers' UNet3DConditionModel offers none, and
            # UNetMotionModel's covers only the resnets (it kept 65% of the activations).
            checkpoint_blocks(self._unet)
        self.place_models()

    def place_models(self) -> None:
        """The key-frame model on the device; the VAE and text encoder there too, or offloaded
        to CPU memory (``offload``); prompt embeddings of earlier models forgotten."""
        self._unet.to(self.device)
        if self.offload:
            # (on a CPU this saves nothing, the weights being in CPU memory already, but it is
            # the same code path, which is how the tests check it without a GPU)
            from accelerate import cpu_offload

            for module in (self._vae, self._text_encoder):
                cpu_offload(module, execution_device=self.device)
        else:
            self._vae.to(self.device)
            self._text_encoder.to(self.device)
        self._embeddings.clear()

    def model_info(self) -> dict[str, dict[str, str]]:
        return dict(self._info)

    # -- key-frame model -----------------------------------------------------------
    @property
    def unet(self):
        if self._unet is None:
            raise RuntimeError("call load() first")
        return self._unet

    def encode_text(self, prompts: list[str]):
        """CLIP states on the device (the core's ``encode_prompts`` caches them per prompt)."""
        if self._text_encoder is None:
            raise RuntimeError("the text encoder was released; encode every prompt first")
        ids = self._tokenizer(prompts, padding="max_length", max_length=self._tokenizer.model_max_length,
                              truncation=True, return_tensors="pt").input_ids
        return self._text_encoder(input_ids=ids.to(self.device)).last_hidden_state.to(self.device)

    def release_text_encoder(self) -> None:
        self._text_encoder = None

    def noise_scheduler_config(self) -> dict:
        if self._scheduler_config is None:
            raise RuntimeError("call load() first")
        return dict(self._scheduler_config)

    def unet_forward(self, x, t, text):
        return self.unet(x, t, encoder_hidden_states=text).sample

    def model_output(self, x, t, text):
        """The UNet's prediction, of the type its scheduler config states (the core converts)."""
        import torch

        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.unet_forward(x.to(self.dtype), t, text.to(self.dtype))

    # -- clips -----------------------------------------------------------------------
    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self._vae.config.block_out_channels) - 1)

    def frames_to_model(self, frames):
        """(F, H, W, 3) uint8 -> (1, C, F, H/8, W/8) latents (VAE mean x scaling factor)."""
        import numpy as np
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32).permute(0, 3, 1, 2) / 127.5 - 1
        vae = self._vae
        out = []
        with torch.no_grad():
            for chunk in x.split(self.decode_chunk):
                dist = vae.encode(chunk.to(self.device, vae.dtype)).latent_dist
                out.append(dist.mean * vae.config.scaling_factor)
        z = torch.cat(out)  # (F, C, h, w)
        return z.permute(1, 0, 2, 3)[None].to(self.device, self.dtype)

    def model_to_frames(self, x):
        """(1, C, F, h, w) latents -> (F, H, W, 3) uint8, a few frames at a time."""
        import torch

        vae = self._vae
        z = x[0].permute(1, 0, 2, 3)  # (F, C, h, w)
        out = []
        with torch.no_grad():
            for chunk in z.split(self.decode_chunk):
                img = vae.decode((chunk / vae.config.scaling_factor).to(self.device, vae.dtype)).sample
                out.append(((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
        return torch.cat(out).permute(0, 2, 3, 1).numpy()

    def set_keyframe_size(self, width: int | None, height: int | None) -> None:
        width, height = width or self.width, height or self.height
        m = self.size_multiple
        if width % m or height % m or width <= 0 or height <= 0:
            raise VmcError(f"--width {width} --height {height}: the {self.name} backend needs multiples of {m}",
                           f"e.g. --width {max(m, round(width / m) * m)} --height {max(m, round(height / m) * m)}")
        self.width, self.height = width, height
