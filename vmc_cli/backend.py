"""The contract between the method (``vmc_cli``) and a model family (a backend plugin).

A backend owns a model family: it loads the models, says which parameters are
temporal attention, maps clips to model space and back, predicts noise with
the key-frame model and runs the later cascade stages. The method (tuning,
inversion, sampling, the profile store) lives in ``vmc_cli`` and only talks to
a backend through this class, so a new backbone needs a new backend and
nothing else.

Video tensors are (batch, channels, frames, height, width) in the key-frame
model's space (pixels in [-1, 1] for a pixel model, latents for a latent one).
Frames on disk are uint8 numpy arrays (frames, height, width, 3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from vmc_cli.progress import Reporter


from vmc_cli.method.tune_config import GENERATE_DEFAULTS

DTYPES = ("float32", "float16", "bfloat16")


def check_device(device: str) -> str:
    """``--device``: auto, cpu, mps, cuda or cuda:N (checked without importing torch)."""
    import re

    from vmc_cli.errors import VmcError

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device or ""):
        raise VmcError(f"unknown --device {device!r}", "use auto, cpu, cuda or cuda:N")
    return device


def torch_dtype(name, device_type: str, half_on_cuda: bool = False):
    """The torch dtype for a ``--dtype`` name (or a torch dtype); None gives float16 on CUDA
    when ``half_on_cuda``, else float32."""
    import torch

    if name is None:
        return torch.float16 if half_on_cuda and device_type == "cuda" else torch.float32
    key = str(name).replace("torch.", "")
    if key not in DTYPES:
        from vmc_cli.errors import VmcError

        raise VmcError(f"unknown --dtype {name!r}", f"use one of {', '.join(DTYPES)}")
    return getattr(torch, key)


class Backend:
    #: set by the plugin manager to the registered name
    name: str = "?"
    #: number of key-frames the key-frame model makes
    num_frames: int = 8
    #: key-frame resolution in pixels
    width: int = 64
    height: int = 40
    #: frames per second of the final video
    fps: float = 8.0
    #: generation defaults: the method's (:data:`vmc_cli.method.tune_config.GENERATE_DEFAULTS`, docs/method.md)
    #: with what the plugin registers over them (``defaults=``), set on the instance by the plugin
    #: manager; every one is a visible CLI option. Tuning defaults are the paper's
    #: (``vmc_cli.method.tuning.TuneConfig``) unless the plugin registers its own (``tune_defaults``).
    defaults: dict[str, Any] = dict(GENERATE_DEFAULTS)
    tune_defaults: dict[str, Any] = {}
    #: substring of module names that are temporal attention blocks
    temporal_attention_marker: str = "temp_attentions"
    #: what the attention under that marker attends over: ``frames`` (temporal attention, one
    #: sequence per position, as long as the clip) or ``tokens`` (a video transformer's
    #: self-attention: all frames' tokens in one sequence)
    attention_span: str = "frames"
    #: clip frames per model frame: 1, or a causal video VAE's fold (Wan: 4, after a first frame
    #: of its own; :meth:`latent_frames`)
    temporal_factor: int = 1
    #: whether model frame n depends on clip frames up to n (a causal video VAE, Wan's), rather
    #: than on frame n alone
    causal_frames: bool = False
    #: the options it declared when registered (set by the plugin manager; see
    #: :mod:`vmc_cli.backend_options`): given ones reach ``configure()`` and ``load()`` by name
    options: tuple = ()
    #: the hint shown when it runs out of GPU memory (its own switches); empty: a generic one
    oom_hint: str = ""
    #: ``vmc export --format lora``: the component a LoRA file's keys start with (diffusers'
    #: ``load_lora_weights``: ``unet``, ``transformer``); None: this backend has no LoRA format
    lora_prefix: str | None = None

    device: "torch.device"
    dtype: "torch.dtype"

    #: the dtype a CUDA device gets when ``--dtype`` is not given: float16 (mixed precision, the
    #: tuned weights kept in float32), bfloat16 (a model trained in it, Wan) or float32; elsewhere
    #: float32
    cuda_dtype: str = "float32"

    # -- loading ---------------------------------------------------------
    def load(self, *, device: str = "cpu", dtype: str | None = None, model_path: str | None = None,
             stages: tuple[str, ...] = ("keyframes",), progress: "Reporter | None" = None,
             check: "Callable[[dict], None] | None" = None, **options) -> None:
        """Load the models. ``stages`` says which parts are needed: ``keyframes``
        (key-frame model and text encoder), names from ``cascade_stages``, or
        ``all`` (see :meth:`expand_stages`). Loading twice loads only what is new.

        The opening is the same for every backend: the stages checked, the device and dtype set
        (:attr:`cuda_dtype`), the files found and the options applied (:meth:`configure`, then
        :meth:`find_files` for the later stages), then ``check``, when given, is called with :meth:`model_info` before any weights are read, so
        that a profile made with another model revision is refused before minutes of loading (it
        raises). The backend's own work is :meth:`load_models`."""
        stages = self.expand_stages(tuple(stages))
        self.set_device(device, dtype)
        self.configure(model_path=model_path, progress=progress, **options)
        self.find_files(stages, progress)
        if check is not None:
            check(self.model_info())
        self.load_models(stages, progress)

    def find_files(self, stages: tuple[str, ...], progress: "Reporter | None" = None) -> None:
        """Locate the files of later ``stages`` that :meth:`configure` did not (one error naming
        every missing file); no weights are read. Default: nothing more to find."""

    def set_device(self, device: str, dtype: str | None) -> None:
        """``self.device`` and ``self.dtype`` for ``--device`` and ``--dtype`` (None: :attr:`cuda_dtype`
        on CUDA, float32 elsewhere)."""
        import torch

        self.device = torch.device(device)
        if dtype is None and self.device.type == "cuda":
            dtype = self.cuda_dtype
        self.dtype = torch_dtype(dtype, self.device.type)

    def load_models(self, stages: tuple[str, ...], progress: "Reporter | None" = None) -> None:
        """Read the weights of ``stages`` (expanded, files already found by :meth:`configure`)
        onto ``self.device`` in ``self.dtype``; what is loaded already stays."""
        raise NotImplementedError

    def configure(self, *, model_path: str | None = None, progress: "Reporter | None" = None, **options) -> None:
        """Before loading: find the model files and set ``num_frames``, ``width`` and ``height``
        from their configurations when they depend on the model (no weights are read), so a
        clip can be checked and read at the right size first. ``options``: the backend's declared
        options (:meth:`setting`). Default: nothing to do."""

    def setting(self, name: str, given: Any = None) -> Any:
        """The value of the declared option ``name``: ``given`` when not None (checked), else its
        environment variable, else its default (:meth:`vmc_cli.backend_options.BackendOption.value`).
        Backends read their settings only this way, so every one is declared."""
        for option in self.options:
            if option.name == name:
                return option.value(given)
        raise KeyError(f"backend {self.name!r} declares no option {name!r}")

    def lora_layouts(self) -> dict:
        """The LoRA file layouts it writes (``vmc export --format``) and reads (``vmc import``), by
        format name: ``lora`` (diffusers' keys under :attr:`lora_prefix`) when it has a LoRA format;
        a backend whose model runs in other tools adds theirs (``comfyui``)."""
        if not self.lora_prefix:
            return {}
        from vmc_cli.models.lora_files import diffusers_layout

        return {"lora": diffusers_layout(self.lora_prefix)}

    def adapter_from_lora(self, pairs: dict) -> "tuple[dict, dict] | None":
        """``vmc import`` on a backend whose profiles are LoRA adapters (Wan): the profile's weights
        and its ``[adapter]`` layout for ``pairs`` (module -> A, B, alpha), checked against the
        loaded model. None (the default): the profile holds tuned weights, and the core merges
        each module's ``scale B A`` into its base weight."""
        return None

    def set_keyframe_size(self, width: int | None, height: int | None) -> None:
        """``vmc tune --width/--height``: key-frames of another size. Refused by backends with a
        fixed size (the default); latent backends accept multiples of their downsampling."""
        if (width or self.width, height or self.height) != (self.width, self.height):
            from vmc_cli.errors import VmcError

            raise VmcError(f"backend {self.name!r} makes key-frames of {self.width}x{self.height} only",
                           "drop --width/--height")

    def expand_stages(self, stages: tuple[str, ...]) -> tuple[str, ...]:
        """``("all",)`` -> ``("keyframes", *cascade_stages)``, plus any ``optional_stages`` named
        beside it (``("all", "xl")``), in pipeline order; unknown names are an error."""
        known = ("keyframes", *self.cascade_stages, *self.optional_stages)
        unknown = [s for s in stages if s != "all" and s not in known]
        if unknown:
            from vmc_cli.errors import VmcError

            raise VmcError(f"backend {self.name!r} has no stage {unknown[0]!r}",
                           f"its stages: {', '.join(known)} (all: {', '.join(known[:1 + len(self.cascade_stages)])})")
        chosen = set(stages) | ({"keyframes", *self.cascade_stages} if "all" in stages else set())
        return tuple(s for s in known if s in chosen)

    def model_info(self) -> dict[str, dict[str, str]]:
        """Models in use: ``{role: {"id": ..., "revision": ...}}``, recorded in
        profile manifests and compared on load."""
        raise NotImplementedError

    # -- key-frame model -------------------------------------------------
    @property
    def unet(self) -> "torch.nn.Module":
        """The key-frame denoiser whose temporal attention is tuned."""
        raise NotImplementedError

    # -- what tuning trains ------------------------------------------------
    def check_target(self, target: str) -> None:
        """Before any model loads: refuse (one line) a ``--target`` this backend cannot tune.
        Default: nothing beyond the core's own check (its words, or a regular expression)."""

    def tunable_parameters(self, target: str) -> "dict[str, torch.nn.Parameter]":
        """The parameters ``--target`` trains, by name. Default: the core's words (``qkv``,
        ``temporal``, ``attention``) or a regular expression over the key-frame model's parameter
        names (:func:`vmc_cli.method.tuning.select_parameters`, temporal blocks found by
        ``temporal_attention_marker``). A backend that tunes adapters adds them here."""
        from vmc_cli.method.tuning import select_parameters

        return select_parameters(self.unet, target, self.temporal_attention_marker)

    def adapter_layout(self) -> "dict[str, Any] | None":
        """The adapters tuning added to the model (e.g. ``{"kind": "lora", "rank": 16, ...}``), which
        the profile records (``[adapter]`` in its manifest) so that generating from it rebuilds
        them (:meth:`use_adapter_layout`). None (the default): tuning changes the model's own weights."""
        return None

    def use_adapter_layout(self, layout: "dict[str, Any] | None", profile: str) -> None:
        """Before a profile's weights are applied: rebuild the adapters ``layout`` records. Default:
        a profile with adapters is refused in one line (this backend has none)."""
        if layout:
            from vmc_cli.errors import VmcError

            raise VmcError(f"profile {profile!r} holds {layout.get('kind', 'adapter')} adapters, which backend "
                           f"{self.name!r} does not take",
                           "generate with the backend it was tuned with (`vmc profiles show PROFILE` names it)")

    def encode_prompts(self, prompts: list[str]) -> "torch.Tensor":
        """Text embeddings for the key-frame model, one row per prompt, in the model dtype:
        each distinct prompt (after :meth:`prompt_key`) is encoded once (:meth:`encode_text`)
        and kept in ``self._embeddings``, so sampling after :meth:`release_text_encoder` needs
        only prompts seen before. A backend clears that dict when its text encoder changes."""
        import torch

        cache = self.__dict__.setdefault("_embeddings", {})
        keys = [self.prompt_key(p) for p in prompts]
        missing = [k for k in dict.fromkeys(keys) if k not in cache]
        if missing:
            with torch.no_grad():
                states = self.encode_text(missing)
            for key, state in zip(missing, states):
                cache[key] = state.to(self.dtype)
        return torch.stack([cache[k] for k in keys])

    def prompt_key(self, prompt: str) -> str:
        """The prompt as the text encoder sees it (two prompts with one key share an embedding)."""
        return prompt

    def encode_text(self, prompts: list[str]) -> "torch.Tensor":
        """The text encoder's states for distinct prompts, one row each (the backend's own work;
        :meth:`encode_prompts` caches them)."""
        raise NotImplementedError

    def release_text_encoder(self) -> None:
        """Free the text encoder (called once embeddings are computed)."""

    #: what the key-frame model predicts (``epsilon``, ``v_prediction``, ``sample``, or ``flow``
    #: for a flow-matching velocity) when its scheduler config does not say it right; None: the
    #: config's ``prediction_type`` (:class:`vmc_cli.method.schedule.Schedule`)
    prediction_type: str | None = None

    def model_output(self, x: "torch.Tensor", t: "torch.Tensor", text: "torch.Tensor") -> "torch.Tensor":
        """The key-frame model's own prediction (of its prediction type) for noisy key-frames
        ``x`` at timesteps ``t`` (shape (batch,)) under text embeddings ``text`` (batch rows).
        The core turns it into epsilon (:meth:`predict_noise`); a backend whose model predicts
        epsilon may override :meth:`predict_noise` instead."""
        raise NotImplementedError

    def predict_noise(self, x: "torch.Tensor", t: "torch.Tensor", text: "torch.Tensor") -> "torch.Tensor":
        """Predicted noise (epsilon) for noisy key-frames ``x`` at timesteps ``t``
        (shape (batch,)) under text embeddings ``text`` (batch rows): :meth:`model_output`
        converted by the schedule (v, x0 or a flow velocity -> epsilon)."""
        from vmc_cli.method.schedule import Schedule

        return Schedule.of(self).epsilon(self.model_output(x, t, text), x, t)

    def predict(self, x: "torch.Tensor", t: "torch.Tensor", text: "torch.Tensor") -> "torch.Tensor":
        """What the samplers step on: epsilon for a diffusion schedule (:meth:`predict_noise`),
        the velocity for a flow-matching one."""
        from vmc_cli.method.schedule import Schedule

        if Schedule.of(self).flow:
            return self.model_output(x, t, text)
        return self.predict_noise(x, t, text)

    def noise_scheduler_config(self) -> dict:
        """The key-frame model's training noise schedule (a diffusers scheduler config)."""
        raise NotImplementedError

    def sampling_scheduler(self):
        """A fresh scheduler for sampling key-frames: DDIM (told it gets epsilon) for a diffusion
        schedule, flow-matching Euler for a flow one (:meth:`vmc_cli.method.schedule.Schedule.sampler`)."""
        from vmc_cli.method.schedule import Schedule

        return Schedule.of(self).sampler()

    def inversion_scheduler(self):
        """A fresh scheduler for inverting a clip: DDIM's inverse, or the flow-matching one."""
        from vmc_cli.method.schedule import Schedule

        return Schedule.of(self).inverter()

    def inversion_info(self, steps: int) -> dict:
        """What the inversion scheduler is (recorded in the profile; a saved inversion is reused
        only when this matches): at least ``mode``. The core adds steps, strength, the last
        timestep reached and the kept ``signal``."""
        return {"mode": "model"}

    # -- clips -------------------------------------------------------------
    def latent_frames(self, frames: int) -> int:
        """Model frames of a clip of ``frames`` frames (one each; a causal VAE folds them)."""
        return frames

    def frames_to_model(self, frames: "np.ndarray") -> "torch.Tensor":
        """(frames, height, width, 3) uint8 at key-frame size -> (1, C, F, h, w) model space.

        The default is pixel space in [-1, 1] (Show-1's base model); a latent backend
        overrides this (and :meth:`model_to_frames`) to go through its VAE."""
        import numpy as np
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32)
        x = x.permute(3, 0, 1, 2)[None] / 127.5 - 1.0  # (1, 3, F, H, W)
        return x.to(self.device, self.dtype)

    def model_to_frames(self, x: "torch.Tensor") -> "np.ndarray":
        """(1, C, F, h, w) model space -> (frames, height, width, 3) uint8 (default: pixels in [-1, 1])."""
        import torch

        x = ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(1, 2, 3, 0).cpu().numpy()

    # -- cascade -----------------------------------------------------------
    #: names of the later stages, in order (``keyframes`` always comes first)
    cascade_stages: tuple[str, ...] = ()
    #: stages after those that run only when named (``--stages all,xl``)
    optional_stages: tuple[str, ...] = ()

    def run_cascade(self, keyframes: "torch.Tensor", prompt: str, *, negative_prompt: str = "",
                    seed: int = 0, stages: tuple[str, ...] | None = None,
                    progress: "Reporter | None" = None) -> "np.ndarray":
        """Run the frozen later stages on sampled key-frames (model space) and
        return the final frames as uint8. ``stages`` limits which ones run."""
        return self.model_to_frames(keyframes)
