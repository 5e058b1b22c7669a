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
  attends over all frames' tokens together, so ``temporal_attention_marker`` is ``attn1``.
  Tuning trains peft LoRA adapters that :meth:`WanBackend.tunable_parameters` adds for
  ``--target PROJECTIONS[:BLOCKS]`` (``qk``, the default: q and k of every block; ``qkv:0-9``:
  q, k and v of blocks 0-9; :func:`parse_target`), rank the ``lora_rank`` option of ``vmc tune``
  (default 16), alpha = rank. The profile records the layout (``[adapter]`` in its manifest,
  :meth:`adapter_layout`) and generating from it rebuilds the adapters first
  (:meth:`use_adapter_layout`); its weights are the adapters' A and B, so ``--motion-scale S``
  is the LoRA scale: the core blends B and keeps A (``S B A``).

Prompt encoding is the pipeline's: UMT5 states of the prompt padded to
``min(512, model_max_length)`` tokens, the states after the prompt's last token set to zero.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vmc_cli.errors import VmcError
from vmc_cli.models.repos import RepoSpec, resolve_all, revision_for
from vmc_latent import LatentVideoBackend, is_hub_id, local_folder

from vmc_cli.method.tune_config import GENERATE_DEFAULTS

from . import DEFAULTS, OPTIONS

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


#: the LoRA rank when ``--option lora_rank`` is not given
DEFAULT_RANK = 16
#: ``--target`` words: the self-attention projections that get adapters
PROJECTION_WORDS = {"q": ("to_q",), "k": ("to_k",), "v": ("to_v",), "qk": ("to_q", "to_k"),
                    "qv": ("to_q", "to_v"), "kv": ("to_k", "to_v"), "qkv": ("to_q", "to_k", "to_v")}
TARGET_HELP = ("on wan, --target is PROJECTIONS[:BLOCKS]: q, k, v, qk (the default), qv, kv or qkv, optionally "
               "with blocks, e.g. qkv:0-9 or qk:0,5,20-29")


def check_rank(rank) -> int:
    """A LoRA rank: a whole number of at least 1 (one line otherwise)."""
    try:
        value = int(rank)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or str(rank).strip() not in (str(value), f"{value}.0"):
        raise VmcError(f"LoRA rank {rank} (--option lora_rank) must be a whole number of at least 1",
                       f"e.g. --option lora_rank={DEFAULT_RANK} (the default)")
    return value


def is_target_word(target: str) -> bool:
    return target.split(":", 1)[0] in PROJECTION_WORDS


def parse_target(target: str, blocks: int | None = None) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """``--target`` on Wan -> (projections, blocks or None for all): ``qk`` -> (to_q, to_k) in every
    block, ``qkv:0-9,20`` -> (to_q, to_k, to_v) in blocks 0..9 and 20. ``blocks``, the
    transformer's block count when known, bounds the indexes. One line for anything else."""
    word, colon, which = target.partition(":")
    if word not in PROJECTION_WORDS:
        raise VmcError(f"--target {target!r} is not a wan target", TARGET_HELP)
    if not colon:
        return PROJECTION_WORDS[word], None
    chosen: set[int] = set()
    try:
        for part in which.split(","):
            lo, _, hi = part.partition("-")
            lo_i, hi_i = int(lo), int(hi) if hi else int(lo)
            if lo_i < 0 or hi_i < lo_i:
                raise ValueError
            chosen.update(range(lo_i, hi_i + 1))
    except ValueError:
        raise VmcError(f"--target {target!r}: {which!r} is not a list of blocks", TARGET_HELP) from None
    if blocks is not None and max(chosen) >= blocks:
        raise VmcError(f"--target {target!r}: the transformer has blocks 0-{blocks - 1}", TARGET_HELP)
    return PROJECTION_WORDS[word], tuple(sorted(chosen))


def lora_layout(rank: int, projections, blocks, count: int, seed: int = 0) -> dict:
    """The adapters as a profile's manifest records them (``[adapter]``)."""
    return {"kind": "lora", "rank": int(rank), "alpha": int(rank),
            "projections": sorted(set(projections)), "blocks": sorted(set(blocks)) if blocks else list(range(count)),
            "init_seed": int(seed)}


#: diffusers' Wan projection names -> the native (ComfyUI, Wan's own code) ones
NATIVE_PROJECTIONS = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
NATIVE_ATTENTION = {"attn1": "self_attn", "attn2": "cross_attn"}
_MODULE = re.compile(r"blocks\.(\d+)\.(attn[12])\.(to_q|to_k|to_v|to_out\.0)")
_COMFY = re.compile(r"diffusion_model\.blocks\.(\d+)\.(self_attn|cross_attn)\.([qkvo])\."
                    r"(lora_A\.weight|lora_B\.weight|lora_down\.weight|lora_up\.weight|alpha)")
_KOHYA = re.compile(r"lora_unet_blocks_(\d+)_(self_attn|cross_attn)_([qkvo])\.(lora_down\.weight|lora_up\.weight|alpha)")
_PART = {"lora_A.weight": "A", "lora_down.weight": "A", "lora_B.weight": "B", "lora_up.weight": "B", "alpha": "alpha"}


def native_module(module: str) -> str:
    """``blocks.3.attn1.to_q`` (diffusers) -> ``blocks.3.self_attn.q`` (Wan's own code, ComfyUI)."""
    m = _MODULE.fullmatch(module)
    if m is None:
        raise VmcError(f"{module!r} has no ComfyUI name", "export with --format lora")
    return f"blocks.{m[1]}.{NATIVE_ATTENTION[m[2]]}.{NATIVE_PROJECTIONS[m[3]]}"


def comfyui_layout():
    """ComfyUI's keys for a Wan 2.1 model (``comfy/lora.py``'s key map gives the weight
    ``blocks.N.self_attn.q.weight`` the LoRA names ``diffusion_model.blocks.N.self_attn.q`` and
    ``lora_unet_blocks_N_self_attn_q``; ``lora_A``/``lora_B`` or ``lora_down``/``lora_up``; scale
    alpha / rank, 1 without an alpha). vmc writes the first form with alpha = rank and reads both."""
    from vmc_cli.models.lora_files import LoraLayout

    diffusers = {v: k for k, v in NATIVE_PROJECTIONS.items()}
    attention = {v: k for k, v in NATIVE_ATTENTION.items()}

    def parse(key: str):
        m = _COMFY.fullmatch(key) or _KOHYA.fullmatch(key)
        return (f"blocks.{m[1]}.{attention[m[2]]}.{diffusers[m[3]]}", _PART[m[4]]) if m else None

    return LoraLayout("comfyui-wan", "ComfyUI (LoraLoaderModelOnly on a Wan 2.1 model)",
                      lambda module, part: f"diffusion_model.{native_module(module)}.lora_{part}.weight", parse,
                      alpha_key=lambda module: f"diffusion_model.{native_module(module)}.alpha")


def spec(repo_id: str) -> RepoSpec:
    return RepoSpec("keyframes", repo_id, COMPONENTS, WEIGHTED, "the Wan transformer, its VAE and UMT5 text encoder")


def valid_frame_counts(frames: int, chunk: int = 4) -> tuple[int, ...]:
    """The frame counts the VAE takes (``chunk k + 1``) nearest to ``frames``: one or two."""
    below = max(1, (frames - 1) // chunk * chunk + 1)
    return (below,) if below == frames else (below, below + chunk)


#: the Wan VAE reads a clip as its first frame and then chunks of this many frames (its causal
#: cache), whatever its temporal downsampling: a clip has ``4k + 1`` frames
VAE_CHUNK = 4


def check_frame_count(frames: int, temporal: int = 4) -> int:
    """``frames`` when it is ``4k + 1`` (:data:`VAE_CHUNK`); else a one-line error naming the
    nearest valid lengths. Returns the number of latent frames, ``(frames - 1) / temporal + 1``
    (``temporal``: the VAE's temporal downsampling, 4 in Wan 2.1's, 1 in shapes-wan's)."""
    if frames < 1 or (frames - 1) % VAE_CHUNK:
        near = " or ".join(map(str, valid_frame_counts(max(frames, 1), VAE_CHUNK)))
        raise VmcError(f"the wan backend takes {VAE_CHUNK}k+1 frames (1, 5, 9, ..., 33, ..., 81), not {frames}",
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
    num_frames, width, height = KEYFRAMES
    fps = 16.0
    #: multiples of 8 (VAE) x 2 (patches); set from the configs by :meth:`configure`
    size_multiple = 16
    temporal_factor = 4
    causal_frames = True
    #: its generation defaults (:data:`vmc_wan.DEFAULTS`, registered the same)
    defaults = {**GENERATE_DEFAULTS, **DEFAULTS}
    #: Wan has no temporal attention: its self-attention attends over all frames' tokens at once
    temporal_attention_marker = "attn1"
    attention_span = "tokens"
    #: exported LoRA files: WanPipeline.load_lora_weights takes ``transformer.blocks.N...`` keys
    lora_prefix = "transformer"
    #: the rank tuning's adapters get (``--option lora_rank``), and the adapters on the model now
    lora_rank = DEFAULT_RANK
    #: its declared settings (the plugin registers the same ones)
    options = OPTIONS
    _adapter: dict | None = None

    # -- loading -------------------------------------------------------------------
    def locate(self, model_path: str | None, log) -> tuple[Path, dict]:
        """The model folder and its ``{"id", "revision", "source"}`` (no weights read)."""
        source = model_path or self.setting("model_path") or DEFAULT_ID
        if not is_hub_id(str(source)):
            folder = Path(source).expanduser()
            return folder, local_folder(folder, spec(folder.name), "a Wan 2.1 folder in the hub's layout",
                                        "pass the folder WanPipeline.save_pretrained wrote, or a hub id")
        revision = revision_for(str(source), self.revision, PINNED)
        found = resolve_all([spec(str(source))], {"keyframes": revision}, None, None, log, family="Wan",
                            path_env=None, revisions_env="VMC_WAN_REVISION")["keyframes"]
        return found.folder, found.info()

    def configure(self, *, model_path=None, progress=None, lora_rank=None, revision=None, keyframes=None,
                  offload=None, gradient_checkpointing=None) -> None:
        """Its settings (checked before any weights load), then the files: the VAE's and
        transformer's configs give the frame and size rules, the ``keyframes`` option the
        key-frames (default 33x832x480). ``lora_rank``: the rank of the LoRA adapters that
        tuning adds (:meth:`tunable_parameters`); a profile's own layout is rebuilt from its
        manifest (:meth:`use_adapter_layout`)."""
        self.lora_rank = check_rank(self.setting("lora_rank", lora_rank))
        self.speed_switches(offload, gradient_checkpointing)
        self.revision = self.setting("revision", revision) if any(o.name == "revision" for o in self.options) else None
        key = (model_path, self.revision)
        if getattr(self, "_folder", None) is None or self._located != key:
            log = progress.log if progress is not None else (lambda m: None)
            folder, info = self.locate(model_path, log)
            self._folder, self._located, self._info = folder, key, {"keyframes": info}
        folder = self._folder
        vae = json.loads((folder / "vae" / "config.json").read_text())
        transformer = json.loads((folder / "transformer" / "config.json").read_text())
        self.blocks = int(transformer.get("num_layers") or 30)
        self.temporal_factor = int(vae.get("scale_factor_temporal") or 4)
        patch = transformer.get("patch_size") or (1, 2, 2)
        self.size_multiple = int(vae.get("scale_factor_spatial") or 8) * int(patch[-1])
        self.num_frames, self.width, self.height = self.keyframes_setting(keyframes)
        check_frame_count(self.num_frames, self.temporal_factor)
        self.set_keyframe_size(self.width, self.height)
        self._scheduler_config = flow_config(json.loads((folder / "scheduler" / "scheduler_config.json").read_text()))

    def set_device(self, device, dtype) -> None:
        import torch

        # bfloat16 on CUDA by default: Wan was trained in it (float16 overflows in its attention)
        super().set_device(device, dtype)
        if dtype is None and self.device.type == "cuda":
            self.dtype = torch.bfloat16

    def load_models(self, stages, progress=None) -> None:
        import torch
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        from vmc_cli.models.quiet import no_progress_bars, quiet_libraries

        if self._unet is not None:
            return
        folder = self._folder
        with quiet_libraries(), no_progress_bars():
            transformer = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer", torch_dtype=self.dtype)
            # the VAE in float32, as Wan's own examples load it (small; its decoder drifts in half)
            vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
            text_encoder = UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=self.dtype)
            tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        self.use_parts(transformer, vae, text_encoder, tokenizer, self._scheduler_config, self.dtype)

    def use_parts(self, transformer, vae, text_encoder, tokenizer, scheduler_config: dict, dtype) -> None:
        """Take loaded models as the backend's: frozen, on the device (text encoder and VAE
        offloaded with ``VMC_WAN_OFFLOAD=1``), diffusers' own gradient checkpointing with
        ``VMC_WAN_GRADIENT_CHECKPOINTING=1``. The base weights stay in ``dtype`` (what is tuned
        is the LoRA adapters, float32 of their own: :meth:`add_lora`), unlike the latent UNets,
        whose tuned q/k/v are moved to float32 (that would be 0.85 GB here for nothing)."""
        self._unet = transformer.eval().requires_grad_(False)
        self.blocks = len(transformer.blocks)
        self._adapter = None
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
        layout = lora_layout(rank, projections, blocks, count, seed)
        if self._adapter == layout:
            return [n for n, _ in self.unet.named_parameters() if "lora_" in n]
        if self._adapter is not None:  # another layout: the old adapters go first
            self.unet.delete_adapters("default")
            self._adapter = None
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
        self._adapter = layout
        return added

    def check_target(self, target: str) -> None:
        """``--target`` on Wan: which self-attention projections get LoRA adapters, and in which
        blocks, ``PROJECTIONS[:BLOCKS]`` (:func:`parse_target`); one line otherwise."""
        parse_target(target, getattr(self, "blocks", None))

    def tunable_parameters(self, target: str):
        """The LoRA adapters ``target`` names (``qk``, ``qkv:0-9``, ...), added now at the rank of
        the ``lora_rank`` option (16 by default). A regular expression (from Python, not the CLI)
        selects among adapters already added with :meth:`add_lora`."""
        from vmc_cli.method.tuning import select_parameters

        if self._adapter is not None and not is_target_word(target):
            return select_parameters(self.unet, target, self.temporal_attention_marker)
        projections, blocks = parse_target(target, len(self.unet.blocks))
        self.add_lora(rank=getattr(self, "lora_rank", DEFAULT_RANK), projections=projections, blocks=blocks)
        return {n: p for n, p in self.unet.named_parameters() if "lora_" in n}

    def lora_layouts(self) -> dict:
        """diffusers' keys (``--format lora``, ``WanPipeline.load_lora_weights``) and ComfyUI's
        native Wan keys (``--format comfyui``)."""
        return {**super().lora_layouts(), "comfyui": comfyui_layout()}

    def adapter_from_lora(self, pairs: dict) -> tuple[dict, dict]:
        """A LoRA file's pairs as a profile: its weights in peft's names and its ``[adapter]``.
        Only the self-attention's q, k and v can be held (the adapters tuning makes); ranks below
        the largest are padded with zeros and alpha / rank is folded into B, so ``B A`` at scale 1
        is the file's change exactly; a (projection, block) the file leaves out gets zero factors."""
        import torch

        from vmc_cli.models.lora_files import scale_of

        count = len(self.unet.blocks)
        outside = sorted(m for m in pairs if not re.fullmatch(r"blocks\.\d+\.attn1\.to_[qkv]", m))
        if outside:
            raise VmcError(f"the LoRA adapts {outside[0]}{f' and {len(outside) - 1} more' if len(outside) > 1 else ''}"
                           ", which a wan profile cannot hold", "wan profiles hold LoRA on the self-attention's q, k and v")
        rank = max(int(p["A"].shape[0]) for p in pairs.values())
        projections = sorted({m.rsplit(".", 1)[1] for m in pairs})
        blocks = sorted({int(m.split(".")[1]) for m in pairs})
        if blocks[-1] >= count:
            raise VmcError(f"the LoRA adapts block {blocks[-1]}, and the model has blocks 0-{count - 1}",
                           "import it with the model it was made for (--model-path)")
        weights = {}
        for block in blocks:
            for projection in projections:
                module = f"blocks.{block}.attn1.{projection}"
                linear = self.unet.get_submodule(module)
                a = torch.zeros(rank, linear.in_features)
                b = torch.zeros(linear.out_features, rank)
                if module in pairs:
                    parts = pairs[module]
                    r = parts["A"].shape[0]
                    if parts["A"].shape[1] != linear.in_features or parts["B"].shape[0] != linear.out_features:
                        raise VmcError(f"the LoRA's {module} is {parts['B'].shape[0]} x "
                                       f"{parts['A'].shape[1]}, the model's {linear.out_features} x "
                                       f"{linear.in_features}", "import it with the model it was made for (--model-path)")
                    a[:r] = parts["A"].float()
                    b[:, :r] = parts["B"].float() * scale_of(parts)
                weights[f"{module}.lora_A.default.weight"] = a
                weights[f"{module}.lora_B.default.weight"] = b
        layout = lora_layout(rank, projections, None if blocks == list(range(count)) else blocks, count)
        return weights, layout

    def adapter_layout(self) -> dict | None:
        """The LoRA adapters on the transformer (rank, alpha, projections, blocks), for the manifest."""
        return dict(self._adapter) if self._adapter is not None else None

    def use_adapter_layout(self, layout: dict | None, profile: str) -> None:
        """A profile's LoRA adapters, rebuilt as its manifest records them (at B = 0, so the
        model is unchanged until the profile's weights are applied)."""
        if not layout or layout.get("kind") != "lora":
            raise VmcError(f"profile {profile!r} records no LoRA adapters, which every wan profile has",
                           "tune the clip again with this vmc")
        try:
            rank, projections = check_rank(layout["rank"]), tuple(layout["projections"])
            blocks = tuple(int(b) for b in layout["blocks"])
        except (KeyError, TypeError, ValueError, VmcError):
            raise VmcError(f"profile {profile!r} has a broken [adapter] section",
                           f"remove it with `vmc profiles rm {profile} --yes` and tune again") from None
        self.add_lora(rank=rank, projections=projections,
                      blocks=None if blocks == tuple(range(len(self.unet.blocks))) else blocks,
                      seed=int(layout.get("init_seed", 0)))

    def keyframes_setting(self, given: str | None = None) -> tuple[int, int, int]:
        """(frames, width, height) of the key-frames: the ``keyframes`` option (or
        ``VMC_WAN_KEYFRAMES``), else :data:`KEYFRAMES`."""
        return keyframes_setting(self.setting("keyframes", given))

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


def keyframes_setting(text: str | None) -> tuple[int, int, int]:
    """(frames, width, height) from the ``keyframes`` option's ``FxWxH``, else :data:`KEYFRAMES`."""
    text = (text or "").strip()
    if not text:
        return KEYFRAMES
    try:
        frames, width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VmcError(f"keyframes (VMC_WAN_KEYFRAMES) {text!r} is not FRAMESxWIDTHxHEIGHT",
                       "give e.g. --option keyframes=33x832x480, or leave it out") from None
    return frames, width, height
