"""The ``show1`` backend: VMC on the Show-1 cascade (showlab).

Models (hub id -> role; see :mod:`vmc_show1.repos` for where files come from):

- ``showlab/show-1-base`` (``keyframes``): the pixel key-frame UNet that VMC tunes
  (8 frames, 40x64, [-1, 1], epsilon; a learned-variance head of 6 output channels is
  split off), its scheduler config (``noise_scheduler_config``) and the T5 tokenizer
  and encoder (sub-folders ``tokenizer``, ``text_encoder``) whose states feed every
  pixel stage;
- ``showlab/show-1-interpolation`` (``interpolation``): 8 -> 29 frames;
- ``DeepFloyd/IF-II-L-v1.0`` (``sr1_first_frame``) and ``showlab/show-1-sr1`` (``sr1``):
  super-resolution to 4x the key-frame size (160x256);
- ``showlab/show-1-sr2`` (``sr2``): latent video-to-video refinement at 576x320.

Settings (all optional; declared in :data:`vmc_show1.OPTIONS`, so ``vmc backends`` lists them): ``--option
NAME=VALUE`` (``--model-path`` for the root), else constructor arguments, else these environment variables:

===================================  =================================================================
``VMC_SHOW1_PATH``                   local root holding ``show-1-base/``, ``show-1-interpolation/``,
                                     ``show-1-sr1/``, ``show-1-sr2/``, ``IF-II-L-v1.0/`` (hub layout);
                                     ``--model-path`` wins over it. Without either: the hub.
``VMC_SHOW1_REVISIONS``              pinned hub revisions per role, e.g.
                                     ``keyframes=<commit>,sr2=main`` (default ``main`` for all).
``VMC_SHOW1_INVERSION``              ``authors`` (default) or ``model``: the noise schedule of DDIM
                                     inversion (see :meth:`Show1Backend.inversion_info`).
``VMC_SHOW1_KEYFRAME_SIZE``          ``WIDTHxHEIGHT`` of the key-frames (default ``64x40``); sr1 makes
                                     4x that, sr2 576x320 scaled by the same factors (multiple of 8).
``VMC_SHOW1_STEPS``                  steps of the later stages, e.g. ``interpolation=75,
                                     sr1_first_frame=70,sr1=125,sr2=50`` (the defaults).
``VMC_SHOW1_OFFLOAD``                ``auto`` (default: on for CUDA devices under 40 GiB), ``1`` or ``0``:
                                     keep the stages not running in CPU memory.
``VMC_SHOW1_GRADIENT_CHECKPOINTING`` ``1``: activation checkpointing in the key-frame UNet (tuning).
===================================  =================================================================

Precision: ``dtype`` defaults to float16 on CUDA, float32 elsewhere. In half precision
the key-frame UNet's temporal attention (what tuning trains) is kept in float32 and the
UNet runs under ``torch.autocast``: fp16 weights with fp32 master copies of the trained
ones, as in the authors' mixed-precision training. Scheduler steps always compute in
float32 (:mod:`vmc_show1.schedulers`).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib.util
import json
import os
import warnings
from pathlib import Path

import torch

from vmc_cli.backend import Backend
from vmc_cli.errors import VmcError
from vmc_cli.progress import SILENT

from . import OPTIONS, repos
from . import stages as cascade
from .repos import REPOS
from .schedulers import float32_steps, scheduler_from_config

#: Show-1's settings for the later stages (``steps`` overridable with VMC_SHOW1_STEPS).
STAGE_SETTINGS: dict[str, dict] = {
    "interpolation": {"steps": 75, "guidance": 4.0, "pairs_per_batch": 7},
    "sr1_first_frame": {"steps": 70, "guidance": 4.0, "noise_level": 150},
    "sr1": {"steps": 125, "guidance": 7.0, "noise_level": 250, "window": 8, "stride": 7},
    "sr2": {"steps": 50, "guidance": 15.0, "strength": 0.8, "negative_prompt": "low resolution, blur"},
}
#: cascade stage -> roles (repositories) it needs
STAGE_ROLES = {"keyframes": ("keyframes",), "interpolation": ("interpolation",),
               "sr1": ("sr1_first_frame", "sr1"), "sr2": ("sr2",)}
#: the noise schedule of the authors' DDIM inversion (Stable Diffusion 1.5's)
AUTHORS_INVERSION = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "set_alpha_to_one": False,
    "clip_sample": False,
    "prediction_type": "epsilon",
}
INVERSION_MODES = ("authors", "model")
HALF = (torch.float16, torch.bfloat16)
#: expected UNet input channels per role (a wrong repository fails early and clearly)
IN_CHANNELS = {"keyframes": 3, "interpolation": 7, "sr1": 6, "sr1_first_frame": 6, "sr2": 4}
TEXT_MAX_LENGTH = 77
OFFLOAD_BELOW_GIB = 40


def _pairs(text: str | None, variable: str) -> dict[str, str]:
    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise VmcError(f"{variable}: cannot read {item.strip()!r}", "write KEY=VALUE pairs separated by commas")
        out[key.strip()] = value.strip()
    return out


def _size(text: str, variable: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    try:
        width, height = int(w), int(h)
    except ValueError:
        width = height = 0
    if not sep or width < 8 or height < 8:
        raise VmcError(f"{variable}={text!r} is not a size", "write WIDTHxHEIGHT, e.g. 64x40")
    return width, height


def _multiple_of_8(x: float) -> int:
    return max(8, int(round(x / 8)) * 8)


class Show1Backend(Backend):
    """VMC's key-frame model and frozen cascade from the Show-1 checkpoints."""
    #: ``vmc export --format lora``: keys ``unet.<module>.lora_A.weight`` (the SVD of W - W0)
    lora_prefix = "unet"

    num_frames = 8
    fps = 8.0
    # inference defaults: Backend.defaults (docs/method.md: 75/75 steps, guidance 9.0); tuning
    # defaults: vmc_cli.method.tuning.TuneConfig (400 steps, lr 1e-4, ...)
    temporal_attention_marker = "temp_attentions"
    cascade_stages = ("interpolation", "sr1", "sr2")
    #: warn about CPU runs of key-frame models bigger than this (the real one has 1.7 billion)
    cpu_warning_parameters = 100_000_000
    #: what to try when it runs out of GPU memory (the CLI's hint)
    oom_hint = "try --dtype float16, VMC_SHOW1_OFFLOAD=1, or VMC_SHOW1_GRADIENT_CHECKPOINTING=1 for tuning"
    #: float16 on CUDA unless --dtype says otherwise (the tuned temporal blocks kept in float32)
    cuda_dtype = "float16"
    #: its declared settings (the plugin registers the same ones)
    options = OPTIONS

    def __init__(self, *, model_path: str | os.PathLike | None = None, revisions: dict[str, str] | None = None,
                 inversion: str | None = None, keyframe_size: tuple[int, int] | None = None,
                 stage_steps: dict[str, int] | None = None, offload: bool | str | None = None,
                 gradient_checkpointing: bool | None = None):
        self.model_path = model_path
        #: the settings given here, which options given later (``configure``) override
        self._given = {"revisions": revisions, "inversion": inversion, "keyframe_size": keyframe_size,
                       "stage_steps": stage_steps, "offload": offload, "gradient_checkpointing": gradient_checkpointing}
        self._apply_settings()
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self._root: Path | None = None
        self._resolved: dict[str, repos.Resolved] = {}
        self._unet = None
        self._scheduler_config: dict | None = None
        self._tokenizer = None
        self._text_encoder = None
        self._embeddings: dict[str, torch.Tensor] = {}
        self._stage_models: dict[str, dict] = {}
        self._progress = SILENT
        self._warned_cpu = False

    # -- sizes -----------------------------------------------------------------------------
    @property
    def sizes(self) -> dict[str, tuple[int, int]]:
        """(width, height) of the frames after each stage: key-frames 64x40, sr1 4x that,
        sr2 576x320 scaled like the key-frames (rounded to a multiple of 8)."""
        w, h = self.width, self.height
        return {"keyframes": (w, h), "interpolation": (w, h), "sr1": (4 * w, 4 * h),
                "sr2": (_multiple_of_8(576 * w / 64), _multiple_of_8(320 * h / 40))}

    def _apply_settings(self, **options) -> None:
        """Its declared options (:data:`vmc_show1.OPTIONS`): given to ``configure``, else to the
        constructor, else their environment variables, else their defaults."""
        given = {**self._given, **{k: v for k, v in options.items() if v is not None}}
        text = {k: (",".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else
                    "x".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in given.items()}
        revisions = self.setting("revisions", text["revisions"])
        self.revisions = _pairs(revisions, "revisions (VMC_SHOW1_REVISIONS)")
        unknown = sorted(set(self.revisions) - set(REPOS))
        if unknown:
            raise VmcError(f"revisions (VMC_SHOW1_REVISIONS) names no model {unknown[0]!r}", f"use {', '.join(REPOS)}")
        self.inversion = self.setting("inversion", text["inversion"])
        self.width, self.height = _size(self.setting("keyframe_size", text["keyframe_size"]),
                                        "keyframe_size (VMC_SHOW1_KEYFRAME_SIZE)")
        self.stage_settings = copy.deepcopy(STAGE_SETTINGS)
        for stage, value in _pairs(self.setting("stage_steps", text["stage_steps"]),
                                   "stage_steps (VMC_SHOW1_STEPS)").items():
            if stage not in self.stage_settings:
                raise VmcError(f"stage_steps (VMC_SHOW1_STEPS) names no stage {stage!r}",
                               f"use {', '.join(STAGE_SETTINGS)}")
            try:
                n = int(value)
            except ValueError:
                n = 0
            if n < 1:
                raise VmcError(f"stage_steps (VMC_SHOW1_STEPS): {stage}={value!r} is not a positive number of steps",
                               f"give e.g. {stage}=50, or leave it out for the defaults")
            self.stage_settings[stage]["steps"] = n
        offload = given["offload"]
        if isinstance(offload, bool):
            offload = "1" if offload else "0"
        offload = self.setting("offload", offload)
        self.offload = "auto" if offload == "auto" else offload == "1"
        self.gradient_checkpointing = self.setting("gradient_checkpointing", given["gradient_checkpointing"])

    # -- loading ---------------------------------------------------------------------------
    def configure(self, *, model_path=None, progress=None, **options) -> None:
        """Its settings (before any file is looked at) and the model root: ``--model-path``, else
        the one given to the constructor, else ``VMC_SHOW1_PATH``, else the hub."""
        self._apply_settings(**options)
        self._progress = progress or SILENT
        root = model_path or self.model_path or self.setting("model_path")
        if root is not None:
            root = Path(root).expanduser()
            if not root.is_dir():
                raise VmcError(f"model path {root} is not a folder",
                               "point --model-path / VMC_SHOW1_PATH at a folder holding show-1-base/, ...")
        self._root = root

    def find_files(self, stages, progress=None) -> None:
        """The files of every repository the stages need (one clear error for all that are missing)."""
        roles = [r for s in stages for r in STAGE_ROLES[s] if r not in self._resolved]
        if roles:
            prefer = "fp16" if self.dtype == torch.float16 else None
            self._resolved.update(repos.resolve_all([REPOS[r] for r in roles], self.revisions, self._root, prefer,
                                                    self._log))

    def load_models(self, stages, progress=None) -> None:
        """The key-frame model. The later stages' models are loaded the first time
        :meth:`run_cascade` needs them."""
        if "keyframes" in stages and self._unet is None:
            self._load_keyframe_model()
        self._warn_if_cpu()

    def _log(self, message: str) -> None:
        self._progress.log(message)

    def _warn_if_cpu(self) -> None:
        if self.device.type == "cuda" or self._warned_cpu or self._unet is None:
            return
        n = sum(p.numel() for p in self._unet.parameters())
        if n < self.cpu_warning_parameters:
            return
        self._warned_cpu = True
        message = (f"warning: running Show-1 on {self.device.type.upper()} (no CUDA GPU): its key-frame UNet alone has "
                   f"{n / 1e9:.1f} billion parameters, so tuning, inversion and the cascade will take many hours "
                   "here (minutes on a GPU). Use a machine with a CUDA GPU (--device cuda).")
        if self._progress.enabled:
            self._log(message)
        else:
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    @property
    def _offloading(self) -> bool:
        if self.device.type != "cuda":
            return False
        if self.offload == "auto":
            total = torch.cuda.get_device_properties(self.device).total_memory
            return total < OFFLOAD_BELOW_GIB * 2**30
        return bool(self.offload)

    def model_info(self) -> dict[str, dict[str, str]]:
        """``{role: {"id", "revision", "source"}}`` for every repository found so far: the
        commit hash for hub files, ``sha256:...`` of the config files for local folders."""
        return {role: self._resolved[role].info() for role in REPOS if role in self._resolved}

    def _load_keyframe_model(self) -> None:
        found = self._resolved["keyframes"]
        self._check_tokenizer(found.folder / "tokenizer")
        self._log(f"loading the key-frame model from {found.spec.repo_id}@{found.revision[:16]}")
        unet = self._load_show1_unet("keyframes")
        from vmc_cli.method.tuning import keep_master_weights

        # fp32 master weights for what tuning trains (the temporal blocks whole); the UNet runs
        # under autocast
        keep_master_weights(unet, self.dtype, self.temporal_attention_marker, layers=None)
        if self.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        self._unet = unet.to(self.device)
        self._scheduler_config = self._read_json(found.folder / "scheduler" / "scheduler_config.json")

    @staticmethod
    def _read_json(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise VmcError(f"cannot read {path}: {exc}", "download the model files again") from None

    def _load_show1_unet(self, role: str, device=None):
        from vmc_pixel.unet import Show1UNet3DConditionModel

        folder = self._resolved[role].folder
        unet = self._from_pretrained_diffusers(Show1UNet3DConditionModel, role, folder, "unet")
        expected = IN_CHANNELS[role]
        if unet.config.in_channels != expected:
            raise VmcError(f"{self._resolved[role].spec.repo_id}'s UNet takes {unet.config.in_channels} input "
                           f"channels, not {expected}: is it the right repository?",
                           "check --model-path / VMC_SHOW1_REVISIONS")
        return unet.eval().requires_grad_(False).to(device or self.device)

    def _from_pretrained_diffusers(self, cls, role: str, folder: Path, sub: str):
        variant = repos.pick_variant(folder / sub, "fp16" if self.dtype == torch.float16 else None)
        try:
            with cascade.no_progress_bars():
                return cls.from_pretrained(folder, subfolder=sub, torch_dtype=self.dtype, variant=variant)
        except (OSError, ValueError, RuntimeError) as exc:
            raise VmcError(f"cannot load {self._resolved[role].spec.repo_id}/{sub} from {folder}: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                           "the files may be incomplete or from another model: download them again") from None

    @staticmethod
    def _check_tokenizer(folder: Path) -> None:
        """A tokenizer folder with only ``spiece.model`` is converted by transformers, which
        needs sentencepiece and protobuf: say so instead of failing obscurely."""
        if (folder / "tokenizer.json").is_file() or not (folder / "spiece.model").is_file():
            return
        missing = []
        for module in ("sentencepiece", "google.protobuf"):
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                missing.append(module.replace("google.", ""))
        if missing:
            raise VmcError(f"reading the T5 tokenizer in {folder} needs {' and '.join(missing)}",
                           f"pip install {' '.join(missing)}")

    # -- text --------------------------------------------------------------------------------
    def _text_model(self):
        found = self._resolved["keyframes"]
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(found.folder / "tokenizer")
        if self._text_encoder is None:
            from transformers import T5EncoderModel

            self._log("loading the T5 text encoder")
            encoder = self._from_pretrained_transformers(T5EncoderModel, "keyframes", "text_encoder")
            self._text_encoder = encoder.to(self.device)
        return self._tokenizer, self._text_encoder

    def _from_pretrained_transformers(self, cls, role: str, sub: str):
        found = self._resolved[role]
        folder = found.folder / sub
        variant = repos.pick_variant(folder, "fp16" if self.dtype == torch.float16 else None)
        try:
            with cascade.no_progress_bars():
                model = cls.from_pretrained(folder, dtype=self.dtype, variant=variant)
        except (OSError, ValueError, RuntimeError) as exc:
            raise VmcError(f"cannot load {found.spec.repo_id}/{sub} from {found.folder}: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                           "the files may be incomplete or from another model: download them again") from None
        return model.eval().requires_grad_(False)

    @staticmethod
    def _clean(prompt: str) -> str:
        return prompt.lower().strip()  # DeepFloyd IF's text preprocessing (without caption cleaning)

    def prompt_key(self, prompt: str) -> str:
        return self._clean(prompt)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """T5 states (len(prompts), 77, dim) of cleaned prompts (the core caches them per prompt;
        the text encoder is loaded again if it was released and a new prompt comes)."""
        tokenizer, encoder = self._text_model()
        batch = tokenizer(prompts, padding="max_length", max_length=TEXT_MAX_LENGTH, truncation=True,
                          add_special_tokens=True, return_tensors="pt")
        return encoder(input_ids=batch.input_ids.to(self.device),
                       attention_mask=batch.attention_mask.to(self.device)).last_hidden_state

    def release_text_encoder(self) -> None:
        """Delete the T5 encoder (about 9.5 GB in fp16); cached embeddings stay."""
        if self._text_encoder is not None:
            self._text_encoder = None
            self._free_memory()

    def _free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- key-frame model ---------------------------------------------------------------------
    @property
    def unet(self):
        if self._unet is None:
            raise RuntimeError("call load() first")
        return self._unet

    def _autocast(self):
        if self.dtype in HALF:
            return torch.autocast(self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def predict_noise(self, x, t, text):
        """Epsilon for noisy key-frames (B, 3, F, H, W): the first 3 output channels (a
        learned-variance head, 6 channels, is split off)."""
        unet = self.unet
        with self._autocast():
            out = unet(x.to(self.device, self.dtype), t.to(self.device),
                       encoder_hidden_states=text.to(self.device, self.dtype)).sample
        return out[:, : x.shape[1]].to(x.dtype)

    def noise_scheduler_config(self) -> dict:
        """The base repository's scheduler config (DPMSolverMultistep, squaredcos_cap_v2, epsilon)."""
        if self._scheduler_config is None:
            raise RuntimeError("call load() first")
        return dict(self._scheduler_config)

    def sampling_scheduler(self):
        """The key-frame sampler, paired with the inversion mode (``VMC_SHOW1_INVERSION``):

        - ``authors`` (default): the base repository's own scheduler config, unchanged, as the
          authors' inference uses it: ``DPMSolverMultistepScheduler`` (dpmsolver++, order 2,
          dynamic thresholding, ``linspace`` spacing clipped at lambda -5.1: 75 steps run
          t = 995, 982, ..., 13); the inverted tensor enters at its first timestep, 995;
        - ``model``: DDIM on the model's own schedule with ``trailing`` timesteps (the first
          one is 999, the same grid as the ``model`` inversion).

        A new scheduler on every call (a multistep solver keeps state); steps computed in
        float32 (see :mod:`vmc_show1.schedulers`)."""
        if self.inversion == "authors":
            return scheduler_from_config(self.noise_scheduler_config())
        from diffusers import DDIMScheduler

        return float32_steps(DDIMScheduler).from_config(self.noise_scheduler_config(), timestep_spacing="trailing")

    def inversion_scheduler(self):
        """DDIM inversion with the schedule chosen by ``VMC_SHOW1_INVERSION``:

        - ``authors`` (default): Stable Diffusion 1.5's scaled-linear betas (0.00085..0.012,
          1000 steps, ``steps_offset`` 1, ``leading``), as in the authors' released code. It
          ends at t = 963 (75 steps) where sqrt(abar) = 0.084, so the noise that key-frame
          sampling starts from at t = 999 keeps about 8% of the clip's signal;
        - ``model``: the key-frame model's own cosine schedule (``trailing``, ending at t = 999,
          sqrt(abar) = 5e-5): a plain DDIM inversion, no extra source signal.

        Clipping and thresholding are off during inversion. vmc logs and records the kept
        signal of every inversion (``vmc_cli.method.inversion.kept_signal``); ``--strength`` below 1
        stops the inversion part-way and keeps more."""
        from diffusers import DDIMInverseScheduler

        return float32_steps(DDIMInverseScheduler).from_config(self._inversion_config())

    def _inversion_config(self) -> dict:
        if self.inversion == "authors":
            return dict(AUTHORS_INVERSION)
        return {**self.noise_scheduler_config(), "clip_sample": False, "thresholding": False,
                "timestep_spacing": "trailing", "set_alpha_to_one": True}

    def inversion_info(self, steps: int | None = None) -> dict:
        """Which inversion schedule is in use (``VMC_SHOW1_INVERSION``); vmc adds the steps,
        the last timestep reached and the kept ``signal`` = sqrt(abar) there: with
        ``authors`` (75 steps) t = 963 and 8.4% of the clip, which key-frame sampling then
        treats as pure noise at t = 999."""
        schedule = ("Stable Diffusion 1.5 scaled-linear betas 0.00085..0.012" if self.inversion == "authors"
                    else f"the key-frame model's {self.noise_scheduler_config().get('beta_schedule')}")
        return {"mode": self.inversion, "schedule": schedule}

    # -- clips ---------------------------------------------------------------------------------
    # -- cascade ---------------------------------------------------------------------------------
    def _load_stage(self, role: str) -> dict:
        """The models of a role, loaded once (kept in CPU memory while offloading)."""
        if role in self._stage_models:
            return self._stage_models[role]
        found = self._resolved[role]
        self._log(f"loading {found.spec.repo_id}@{found.revision[:16]} ({found.spec.purpose})")
        where = torch.device("cpu") if self._offloading else self.device
        folder = found.folder
        models: dict = {"scheduler": self._load_scheduler(folder / "scheduler" / "scheduler_config.json")}
        if role == "sr1_first_frame":
            from diffusers import UNet2DConditionModel

            unet = self._from_pretrained_diffusers(UNet2DConditionModel, role, folder, "unet")
            if unet.config.in_channels != IN_CHANNELS[role]:
                raise VmcError(f"{found.spec.repo_id}'s UNet takes {unet.config.in_channels} input channels, not 6",
                               "point the model path at the Show-1 repositories' own files")
            models["unet"] = unet.eval().requires_grad_(False).to(where)
        else:
            models["unet"] = self._load_show1_unet(role, where)
        if role in ("sr1", "sr1_first_frame"):
            models["noising_scheduler"] = self._load_scheduler(
                folder / "image_noising_scheduler" / "scheduler_config.json")
        if role == "sr2":
            from diffusers import AutoencoderKL
            from transformers import AutoTokenizer, CLIPTextModel

            vae = self._from_pretrained_diffusers(AutoencoderKL, role, folder, "vae")
            models["vae"] = vae.eval().requires_grad_(False).to(where)
            models["text_encoder"] = self._from_pretrained_transformers(CLIPTextModel, role, "text_encoder").to(where)
            models["tokenizer"] = AutoTokenizer.from_pretrained(folder / "tokenizer")
        self._stage_models[role] = models
        return models

    def _load_scheduler(self, path: Path):
        return scheduler_from_config(self._read_json(path))

    @contextlib.contextmanager
    def _stage(self, role: str):
        """A role's models on the device while it runs (back to CPU memory after, when offloading)."""
        models = self._load_stage(role)
        modules = [m for m in models.values() if isinstance(m, torch.nn.Module)]
        offloading = self._offloading
        if offloading:
            for m in modules:
                m.to(self.device)
        try:
            yield models
        finally:
            if offloading:
                for m in modules:
                    m.to("cpu")
                self._free_memory()

    @torch.no_grad()
    def run_cascade(self, keyframes, prompt, *, negative_prompt="", seed=0, stages=None, progress=None):
        """Key-frames (1, 3, 8, h, w) -> uint8 frames (29, H, W, 3): interpolation, super-resolution 1
        (IF-II-L on the first frame, then windows of 8), super-resolution 2. The pixel stages use
        the T5 embeddings of ``prompt`` and ``negative_prompt`` (Show-1: empty); sr2 uses its own
        CLIP text encoder with its own negative prompt ("low resolution, blur")."""
        progress = progress or self._progress
        stages = self.cascade_stages if stages is None else tuple(stages)
        unknown = [s for s in stages if s not in self.cascade_stages]
        if unknown:
            raise VmcError(f"backend {self.name!r} has no stage {unknown[0]!r}",
                           f"its stages: {', '.join(self.cascade_stages)}")
        absent = [r for s in stages for r in STAGE_ROLES[s] if r not in self._resolved]
        if absent:
            raise RuntimeError(f"models not loaded: {absent}; call load(stages=('all',)) first")
        settings = self.stage_settings
        text, uncond = self.encode_prompts([prompt, negative_prompt]).chunk(2)
        self.release_text_encoder()  # between stages: the embeddings are cached
        video = keyframes.to(self.device, self.dtype)
        offloading = self._offloading
        if offloading and self._unet is not None:
            self._unet.to("cpu")
            self._free_memory()
        try:
            if "interpolation" in stages:
                cfg = settings["interpolation"]
                with self._stage("interpolation") as m:
                    video = cascade.interpolate(m["unet"], m["scheduler"], video, text, uncond, steps=cfg["steps"],
                                                guidance=cfg["guidance"], seed=seed,
                                                pairs_per_batch=cfg["pairs_per_batch"], progress=progress)
            if "sr1" in stages:
                size = self.sizes["sr1"]
                cfg = settings["sr1_first_frame"]
                with self._stage("sr1_first_frame") as m:
                    first = cascade.super_resolve_first_frame(
                        m["unet"], m["scheduler"], m["noising_scheduler"], video[:, :, 0], text, uncond, size=size,
                        steps=cfg["steps"], guidance=cfg["guidance"], noise_level=cfg["noise_level"], seed=seed,
                        progress=progress)
                cfg = settings["sr1"]
                with self._stage("sr1") as m:
                    video = cascade.super_resolve(
                        m["unet"], m["scheduler"], m["noising_scheduler"], video, first, text, uncond, size=size,
                        steps=cfg["steps"], guidance=cfg["guidance"], noise_level=cfg["noise_level"],
                        window=cfg["window"], stride=cfg["stride"], seed=seed, progress=progress)
            frames = self.model_to_frames(video)
            if "sr2" in stages:
                cfg = settings["sr2"]
                with self._stage("sr2") as m:
                    frames = cascade.refine(
                        m["vae"], m["text_encoder"], m["tokenizer"], m["unet"], m["scheduler"], frames, prompt,
                        cfg["negative_prompt"], size=self.sizes["sr2"], steps=cfg["steps"], guidance=cfg["guidance"],
                        strength=cfg["strength"], seed=seed, progress=progress)
            return frames
        finally:
            if offloading and self._unet is not None:
                self._unet.to(self.device)
