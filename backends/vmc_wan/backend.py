"""The ``wan`` backend: Wan 2.1 text-to-video (a flow-matching transformer) from diffusers.

Models, part by part (diffusers' and transformers' own classes, not the pipeline):
``WanTransformer3DModel`` (``transformer/``), ``AutoencoderKLWan`` (``vae/``), ``UMT5EncoderModel``
and its tokenizer (``text_encoder/``, ``tokenizer/``) and the scheduler config (``scheduler/``), from

- ``--model-path FOLDER``: a folder in the hub's layout (what ``WanPipeline.save_pretrained``
  writes; :func:`vmc_wan.tiny.write_tiny_wan` writes a miniature); its revision is a hash of its
  configuration files;
- ``--model-path OWNER/NAME`` or, by default, ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``: the hub
  repository at ``VMC_WAN_REVISION`` (default: the commit in ``PINNED``), from the cache, or
  downloaded when the hub can be reached; offline and not cached, one line naming the
  ``hf download`` command.

Facts it states (the core does the rest, ``docs/method.md``):

- the schedule: rectified flow, ``x_t = (1 - s) x0 + s eps`` with ``s = t / 1000``; the
  transformer predicts the velocity ``v = eps - x0`` (prediction type ``flow``), which
  :meth:`model_output` returns raw for the core to convert. The hub repository ships a
  ``UniPCMultistepScheduler`` config with ``use_flow_sigmas`` and ``flow_shift``; the core samples
  and inverts with flow-matching Euler, so :meth:`noise_scheduler_config` hands it a
  ``FlowMatchEulerDiscreteScheduler`` config with ``shift`` = that ``flow_shift``: the same
  training schedule and the same shift of the step grid, though not the same steps (UniPC's
  N sigmas are ``linspace(1, 0, N + 1)[:-1]`` shifted, Euler's run from 1 to the shifted
  1/1000 in N steps: at 10 steps 0.964, ..., 0.252 against 0.960, ..., 0.009);
- clips: the VAE is causal in time and folds 4 frames into one latent frame after a first
  frame of its own, so a clip must have ``4k + 1`` frames and becomes ``k + 1`` latent frames,
  (1, 16, k + 1, H/8, W/8), normalised as the pipeline does, ``(z - latents_mean) / latents_std``;
  width and height must be multiples of 16 (8 for the VAE times the transformer's 2x2 patches);
- key-frames: 33 frames (9 latent frames, 8 latent motion steps, as VMC's 8 key-frames give
  7) at Wan's 480p, 832x480, 16 fps. Why 33: the transformer attends over every token of the
  clip at once, 9 x 30 x 52 = 14,040 tokens here (81 frames would be 32,760); tuning backpropagates
  through all 30 blocks, whose saved activations grow with the tokens, 76 kB per token and
  block (the memory notes in ``vmc_wan/__init__.py``): about 32 GB at 33 frames, 75 GB at 81, so
  33 frames tune on one 80 GB GPU as they are and on a 24 GB one with gradient checkpointing
  (``VMC_WAN_GRADIENT_CHECKPOINTING=1``), where 81 would not fit without;
- tunable modules: Wan has no temporal attention; its self-attention (``attn1``, every block)
  attends over all frames' tokens together, so ``temporal_attention_marker`` is ``attn1``. The
  core's ``--target qkv`` matches nothing here (it wants q/k/v nested inside a marked module, as
  Show-1's ``temp_attentions.N...attn1.to_q``), so the backend registers its own default target,
  :data:`LORA_TARGET`: the ``lora_A``/``lora_B`` of the peft LoRA adapters that :meth:`WanBackend.add_lora`
  puts on attn1's q and k (v and the blocks selectable, rank the ``lora_rank`` option, default 16
  through the CLI; alpha = rank). Not wired yet: ``--target`` words for projections and blocks,
  the LoRA layout in the profile (a profile tuned at another rank is refused by shape, "tune
  again"), and the motion scale as the LoRA scale (the core's ``W0 + S (W - W0)`` on A and B
  separately gives ``S B (A0 + S (A - A0))``, not ``S B A``).

Prompt encoding is the pipeline's: UMT5 states of the prompt padded to
``min(512, model_max_length)`` tokens, the states after the prompt's last token set to zero.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vmc_cli.errors import VmcError
from vmc_cli.repos import RepoSpec, resolve_all, revision_for
from vmc_latent import LatentVideoBackend, is_hub_id, local_folder

DEFAULT_ID = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
#: The hub commit loaded by default (``VMC_WAN_REVISION`` overrides it; ``main`` takes the
#: newest): the snapshot folder name (``models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers/snapshots/<commit>``)
#: of caches that loaded this model, seen in several unrelated public scripts and logs. Not yet
#: checked against the hub (the machine that wrote this had no network); a pin the hub does
#: not know fails the download with a one-line error naming the variable.
PINNED: dict[str, str] = {
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers": "0fad780a534b6463e45facd96134c9f345acfa5b",
}
#: (frames, width, height) of the key-frames for known repositories and for any other folder
KEYFRAMES = (33, 832, 480)
COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED = ("transformer", "vae", "text_encoder")
#: Wan's text length (the pipeline's max_sequence_length)
TEXT_LENGTH = 512


#: the projections LoRA adapters go on by default (issue #21: the self-attention's q and k)
LORA_PROJECTIONS = ("to_q", "to_k")
#: the names of LoRA parameters on the self-attention, for the core's ``--target`` (a regular
#: expression over parameter names): ``lora_A`` and ``lora_B`` of attn1's projections, nothing else
LORA_TARGET = r"\.attn1\.to_(q|k|v)\.lora_[AB]\."


def spec(repo_id: str) -> RepoSpec:
    return RepoSpec("keyframes", repo_id, COMPONENTS, WEIGHTED, "the Wan transformer, its VAE and UMT5 text encoder")


def valid_frame_counts(frames: int, temporal: int = 4) -> tuple[int, ...]:
    """The frame counts the VAE takes (``temporal k + 1``) nearest to ``frames``: one or two."""
    below = max(1, (frames - 1) // temporal * temporal + 1)
    return (below,) if below == frames else (below, below + temporal)


def check_frame_count(frames: int, temporal: int = 4) -> int:
    """``frames`` when it is ``temporal k + 1``; else a one-line error naming the nearest valid
    lengths. Returns the number of latent frames, ``k + 1``."""
    if frames < 1 or (frames - 1) % temporal:
        near = " or ".join(map(str, valid_frame_counts(max(frames, 1), temporal)))
        raise VmcError(f"the wan backend takes {temporal}k+1 frames (1, 5, 9, ..., 33, ..., 81), not {frames}",
                       f"use --frames {near}")
    return (frames - 1) // temporal + 1


def flow_config(config: dict) -> dict:
    """The key-frame schedule as a ``FlowMatchEulerDiscreteScheduler`` config, from the
    folder's scheduler config: a flow-matching Euler one as it is; a UniPC/DPM one with
    flow sigmas (the hub's) as the Euler config with ``shift`` = its ``flow_shift``."""
    name = str(config.get("_class_name", ""))
    if "FlowMatch" in name:
        return dict(config)
    if config.get("use_flow_sigmas") or config.get("prediction_type") == "flow_prediction":
        return {"_class_name": "FlowMatchEulerDiscreteScheduler",
                "num_train_timesteps": int(config.get("num_train_timesteps", 1000)),
                "shift": float(config.get("flow_shift", 1.0) or 1.0)}
    raise VmcError(f"the scheduler config ({name or 'no class'}) is not a flow-matching one",
                   "point --model-path at a Wan 2.1 folder (WanPipeline.save_pretrained's layout)")


class WanBackend(LatentVideoBackend):
    env_prefix = "WAN"
    num_frames, width, height = KEYFRAMES
    fps = 16.0
    #: multiples of 8 (VAE) x 2 (patches); set from the configs by :meth:`configure`
    size_multiple = 16
    temporal_factor = 4
    #: Wan's own defaults (50 steps, guidance 5), not VMC's 75/75/9 for Show-1
    defaults = {"invert_steps": 50, "sample_steps": 50, "guidance": 5.0, "negative_prompt": ""}
    #: Wan has no temporal attention: its self-attention attends over all frames' tokens at once
    temporal_attention_marker = "attn1"

    # -- loading -------------------------------------------------------------------
    def locate(self, model_path: str | None, log) -> tuple[Path, dict]:
        """The model folder and its ``{"id", "revision", "source"}`` (no weights read)."""
        source = model_path or os.environ.get("VMC_WAN_MODEL") or DEFAULT_ID
        if not is_hub_id(str(source)):
            folder = Path(source).expanduser()
            return folder, local_folder(folder, spec(folder.name), "a Wan 2.1 folder in the hub's layout",
                                        "pass the folder WanPipeline.save_pretrained wrote, or a hub id")
        revision = revision_for(str(source), "VMC_WAN_REVISION", PINNED)
        found = resolve_all([spec(str(source))], {"keyframes": revision}, None, None, log, family="Wan",
                            path_env=None, revisions_env="VMC_WAN_REVISION")["keyframes"]
        return found.folder, found.info()

    def configure(self, *, model_path=None, progress=None, lora_rank=None) -> None:
        """Find the files; the VAE's and transformer's configs give the frame and size rules,
        ``VMC_WAN_KEYFRAMES=FRAMESxWIDTHxHEIGHT`` the key-frames (default 33x832x480)."""
        if getattr(self, "_folder", None) is not None and self._model_path == model_path:
            return
        log = progress.log if progress is not None else (lambda m: None)
        folder, info = self.locate(model_path, log)
        self._folder, self._model_path, self._info = folder, model_path, {"keyframes": info}
        vae = json.loads((folder / "vae" / "config.json").read_text())
        transformer = json.loads((folder / "transformer" / "config.json").read_text())
        self.temporal_factor = int(vae.get("scale_factor_temporal") or 4)
        patch = transformer.get("patch_size") or (1, 2, 2)
        self.size_multiple = int(vae.get("scale_factor_spatial") or 8) * int(patch[-1])
        self.num_frames, self.width, self.height = keyframes_setting()
        check_frame_count(self.num_frames, self.temporal_factor)
        self.set_keyframe_size(self.width, self.height)
        self._scheduler_config = flow_config(json.loads((folder / "scheduler" / "scheduler_config.json").read_text()))

    def load(self, *, device="cpu", dtype=None, model_path=None, stages=("keyframes",), progress=None, check=None,
             lora_rank=None):
        """Load the parts; with ``lora_rank`` (the ``lora_rank`` option, 16 through the CLI) add
        LoRA adapters of that rank on attn1's q and k (:meth:`add_lora`), which tuning trains."""
        import torch
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        from vmc_cli.backend import torch_dtype
        from vmc_cli.quiet import no_progress_bars, quiet_libraries

        self.expand_stages(tuple(stages))
        if self._unet is not None:
            return
        self.device = torch.device(device)
        # bfloat16 on CUDA by default: Wan was trained in it (float16 overflows in its attention)
        self.dtype = torch.bfloat16 if dtype is None and self.device.type == "cuda" else torch_dtype(
            dtype, self.device.type)
        self.speed_switches()
        self.configure(model_path=model_path, progress=progress)
        if check is not None:
            check(self.model_info())
        folder = self._folder
        with quiet_libraries(), no_progress_bars():
            transformer = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer", torch_dtype=self.dtype)
            # the VAE in float32, as Wan's own examples load it (small; its decoder drifts in half)
            vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
            text_encoder = UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=self.dtype)
            tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        self.use_parts(transformer, vae, text_encoder, tokenizer, self._scheduler_config, self.dtype)
        if lora_rank:
            self.add_lora(rank=int(lora_rank))

    def use_parts(self, transformer, vae, text_encoder, tokenizer, scheduler_config: dict, dtype) -> None:
        """Take loaded models as the backend's: frozen, on the device (text encoder and VAE
        offloaded with ``VMC_WAN_OFFLOAD=1``), diffusers' own gradient checkpointing with
        ``VMC_WAN_GRADIENT_CHECKPOINTING=1``. The base weights stay in ``dtype`` (what is tuned
        is the LoRA adapters, float32 of their own: :meth:`add_lora`), unlike the latent UNets,
        whose tuned q/k/v are moved to float32 (that would be 0.85 GB here for nothing)."""
        self._unet = transformer.eval().requires_grad_(False)
        self._vae = vae.eval().requires_grad_(False)
        self._text_encoder = text_encoder.eval().requires_grad_(False)
        self._tokenizer = tokenizer
        self._scheduler_config = flow_config(scheduler_config)
        if self.gradient_checkpointing:
            self._unet.enable_gradient_checkpointing()
        self.place_models()

    # -- LoRA ---------------------------------------------------------------------------
    def add_lora(self, rank: int = 16, projections: tuple[str, ...] = LORA_PROJECTIONS,
                 blocks: tuple[int, ...] | None = None, seed: int = 0) -> list[str]:
        """LoRA adapters (peft, through diffusers' ``add_adapter``) on the self-attention
        projections ``projections`` (to_q, to_k, to_v) of ``blocks`` (None: all), rank ``rank``,
        alpha = rank (scale 1: what ``WanPipeline.load_lora_weights`` assumes for a file without
        alphas, so an exported adapter means the same there). ``lora_A`` is drawn from a generator
        seeded with ``seed`` (the same for every load, so a profile's base values are known),
        ``lora_B`` is zero: the model predicts exactly as before. The adapters are float32 (master
        weights under autocast). Returns the names of the new parameters, which
        :data:`LORA_TARGET` selects."""
        import re

        import torch
        from peft import LoraConfig

        count = len(self.unet.blocks)
        hint = f"LoRA goes on to_q, to_k or to_v of blocks 0-{count - 1}, at a rank of at least 1"
        unknown = sorted(set(projections) - {"to_q", "to_k", "to_v"})
        if unknown or not projections:
            raise VmcError(f"no LoRA projection {', '.join(unknown) or '(none given)'}", hint)
        outside = sorted(b for b in (blocks or ()) if not 0 <= b < count)
        if outside or blocks == ():
            raise VmcError(f"the transformer has no block {', '.join(map(str, outside)) or '(none given)'}", hint)
        if rank < 1:
            raise VmcError(f"LoRA rank {rank}", hint)
        which = "|".join(map(str, sorted(set(blocks)))) if blocks else r"\d+"
        config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True,
                            target_modules=rf"blocks\.({which})\.attn1\.({'|'.join(projections)})")
        before = {n for n, _ in self.unet.named_parameters()}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.unet.add_adapter(config)
        added = [n for n, _ in self.unet.named_parameters() if n not in before and "lora_" in n]
        for name in added:
            param = self.unet.get_parameter(name)
            param.data = param.data.to(torch.float32)
            param.requires_grad_(False)
        assert all(re.search(LORA_TARGET, n) for n in added)
        return added

    # -- key-frame model --------------------------------------------------------------
    def prompt_key(self, prompt: str) -> str:
        return " ".join(prompt.split())  # (the pipeline's prompt_clean, without ftfy)

    @property
    def text_length(self) -> int:
        return min(TEXT_LENGTH, int(self._tokenizer.model_max_length))

    def encode_text(self, prompts: list[str]):
        """UMT5 states, (prompts, text_length, dim), zero after each prompt's tokens (as WanPipeline)."""
        if self._text_encoder is None:
            raise RuntimeError("the text encoder was released; encode every prompt first")
        tokens = self._tokenizer(prompts, padding="max_length", max_length=self.text_length, truncation=True,
                                 add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        mask = tokens.attention_mask.to(self.device)
        states = self._text_encoder(tokens.input_ids.to(self.device), mask).last_hidden_state
        return states * mask[..., None].to(states.dtype)

    def noise_scheduler_config(self) -> dict:
        if self._scheduler_config is None:
            raise RuntimeError("call load() first")
        return dict(self._scheduler_config)

    def unet_forward(self, x, t, text):
        """The transformer's velocity for latents ``x`` (batch, C, F', h, w) at timesteps ``t``
        (``sigma * 1000``, float)."""
        import torch

        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0]).to(torch.float32)
        return self.unet(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]

    # -- clips ------------------------------------------------------------------------
    def latent_frames(self, frames: int) -> int:
        """Latent frames of a clip of ``frames`` frames (one-line error unless ``4k + 1``)."""
        return check_frame_count(frames, self.temporal_factor)

    def _norm(self, device):
        import torch

        config = self._vae.config
        shape = (1, config.z_dim, 1, 1, 1)
        mean = torch.tensor(config.latents_mean, dtype=torch.float32).view(shape).to(device)
        std = torch.tensor(config.latents_std, dtype=torch.float32).view(shape).to(device)
        return mean, std

    def frames_to_model(self, frames):
        """(4k+1, H, W, 3) uint8 -> (1, C, k+1, H/8, W/8): the VAE posterior's mean, normalised."""
        import numpy as np
        import torch

        self.latent_frames(len(frames))
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32).permute(3, 0, 1, 2)[None] / 127.5 - 1
        vae = self._vae
        with torch.no_grad():
            z = vae.encode(x.to(self.device, vae.dtype)).latent_dist.mean.float()
        mean, std = self._norm(z.device)
        return ((z - mean) / std).to(self.device, self.dtype)

    def model_to_frames(self, x):
        """(1, C, k+1, h, w) normalised latents -> (4k+1, H, W, 3) uint8."""
        import torch

        vae = self._vae
        mean, std = self._norm(x.device)
        with torch.no_grad():
            video = vae.decode((x.float() * std + mean).to(vae.dtype)).sample  # (1, 3, F, H, W)
        return ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


def keyframes_setting() -> tuple[int, int, int]:
    """(frames, width, height) from ``VMC_WAN_KEYFRAMES=FxWxH``, else :data:`KEYFRAMES`."""
    text = os.environ.get("VMC_WAN_KEYFRAMES", "").strip()
    if not text:
        return KEYFRAMES
    try:
        frames, width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VmcError(f"VMC_WAN_KEYFRAMES={text!r} is not FRAMESxWIDTHxHEIGHT",
                       "set e.g. VMC_WAN_KEYFRAMES=33x832x480, or unset it") from None
    return frames, width, height
