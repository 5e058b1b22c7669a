"""The ``zeroscope`` backend: ModelScope's text-to-video UNet (ZeroScope fine-tunes) from diffusers.

Models, part by part (diffusers' model classes, not the pipeline): ``UNet3DConditionModel``
(``unet/``), ``AutoencoderKL`` (``vae/``), ``CLIPTextModel`` and ``CLIPTokenizer``
(``text_encoder/``, ``tokenizer/``) and the scheduler config (``scheduler/``), from

- ``--model-path FOLDER``: a folder in the hub's layout (what
  ``TextToVideoSDPipeline.save_pretrained`` writes); its revision is a hash of its
  configuration files;
- ``--model-path OWNER/NAME`` or, by default, ``cerspense/zeroscope_v2_576w``: the hub
  repository at ``VMC_ZEROSCOPE_REVISION`` (default: the commit pinned in
  ``PINNED`` below for the two known ids, ``main`` for another; the commit found is
  what the profile records), from the cache, or downloaded when the hub can be reached.

Optional stage ``xl`` (``vmc generate ... --stages all,xl``): ZeroScope's video-to-video
upscale, ``cerspense/zeroscope_v2_XL`` (``VMC_ZEROSCOPE_XL_REVISION``, default ``main``: no pin is
known for it; or a local folder,
``VMC_ZEROSCOPE_XL_PATH``): the frames resized to 1024x576 (a local XL folder: twice the
key-frame size, or ``VMC_ZEROSCOPE_XL_SIZE=WxH``), encoded with its VAE, noised to
strength 0.6 and denoised with its UNet under the prompt (as ZeroScope's authors upscale).

Key-frames: 24 at 576x320 for ZeroScope, 16 at 256x256 for ModelScope 1.7b; for another
folder the UNet's ``sample_size`` times the VAE's factor, square, and 16 frames;
``vmc tune --width/--height/--frames`` override them. The temporal attention VMC tunes is
``temp_attentions`` (q/k/v by default).
"""

from __future__ import annotations

from pathlib import Path

from vmc_cli.errors import VmcError
from vmc_cli.models.repos import RepoSpec, resolve_all, revision_for
from vmc_latent import LatentVideoBackend, is_hub_id, local_folder

from vmc_cli.method.tune_config import GENERATE_DEFAULTS

from . import DEFAULTS, OPTIONS

DEFAULT_ID = "cerspense/zeroscope_v2_576w"
XL_ID = "cerspense/zeroscope_v2_XL"
XL_SIZE = (1024, 576)
XL_STRENGTH = 0.6
#: known repositories: (frames, width, height) of their key-frames
KNOWN = {
    "cerspense/zeroscope_v2_576w": (24, 576, 320),
    "damo-vilab/text-to-video-ms-1.7b": (16, 256, 256),
}
#: The hub commits it loads by default, per repository (one not listed is taken at ``main``);
#: ``VMC_ZEROSCOPE_REVISION`` overrides them (``main`` takes the newest).
#: The commits are the snapshot folder names (``models--OWNER--NAME/snapshots/<commit>``) of
#: caches that loaded these models, seen in public code and logs; the machine that wrote this
#: table had no network to check them against the hub. A pin the hub does not know fails the
#: download with a one-line error naming the variable that overrides it.
PINNED: dict[str, str] = {
    "cerspense/zeroscope_v2_576w": "6963642a64dbefa93663d1ecebb4ceda2d9ecb28",
    "damo-vilab/text-to-video-ms-1.7b": "338683c3175cde59b407a699af8fe68f4a2b8f74",
}
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED = ("unet", "vae", "text_encoder")


def spec(repo_id: str) -> RepoSpec:
    return RepoSpec("keyframes", repo_id, COMPONENTS, WEIGHTED, "the text-to-video UNet, its VAE and text encoder")


class _XLStage(LatentVideoBackend):
    """ZeroScope XL's UNet, VAE and text encoder (the ``xl`` stage)."""

    options = OPTIONS


class ZeroScopeBackend(LatentVideoBackend):
    #: its declared settings (the plugin registers the same ones)
    options = OPTIONS
    #: its generation defaults (:data:`vmc_zeroscope.DEFAULTS`, registered the same)
    defaults = {**GENERATE_DEFAULTS, **DEFAULTS}
    num_frames, width, height = KNOWN[DEFAULT_ID]
    fps = 8.0
    optional_stages = ("xl",)
    _xl: _XLStage | None = None

    def locate(self, model_path: str | None, log) -> tuple[Path, dict]:
        """The model folder and its ``{"id", "revision", "source"}``."""
        source = model_path or self.setting("model_path") or DEFAULT_ID
        if not is_hub_id(str(source)):
            folder = Path(source).expanduser()
            return folder, local_folder(folder, spec(folder.name), "a ZeroScope/ModelScope folder in the hub's layout",
                                        "pass the folder TextToVideoSDPipeline.save_pretrained wrote, or a hub id")
        revision = revision_for(str(source), self.revision, PINNED)
        found = resolve_all([spec(str(source))], {"keyframes": revision}, None,
                            "fp16" if _cuda() else None, log,
                            family="ZeroScope", path_env=None, revisions_env="VMC_ZEROSCOPE_REVISION")["keyframes"]
        return found.folder, found.info()

    def configure(self, *, model_path=None, progress=None, revision=None, xl_path=None, xl_revision=None,
                  xl_size=None, offload=None, gradient_checkpointing=None) -> None:
        """Its settings, then the model files: the key-frame size and count from their configs
        (no weights are read), so that a clip can be read at the right size before loading."""
        import json

        self.speed_switches(offload, gradient_checkpointing)
        self.revision = self.setting("revision", revision)
        self.xl_settings = {"path": self.setting("xl_path", xl_path), "revision": self.setting("xl_revision", xl_revision),
                            "size": self.setting("xl_size", xl_size)}
        key = (model_path, self.revision)
        if getattr(self, "_folder", None) is not None and self._located == key:
            return
        log = progress.log if progress is not None else (lambda m: None)
        folder, info = self.locate(model_path, log)
        self._folder, self._located, self._info = folder, key, {"keyframes": info}
        known = KNOWN.get(info["id"]) if info["source"] == "hub" else None
        if known:
            self.num_frames, self.width, self.height = known
        else:
            unet = json.loads((folder / "unet" / "config.json").read_text())
            vae = json.loads((folder / "vae" / "config.json").read_text())
            side = int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
            self.num_frames, self.width, self.height = 16, side, side

    def load_models(self, stages, progress=None) -> None:
        from diffusers import UNet3DConditionModel

        if self._unet is None:
            self.load_parts(self._folder, dtype=self.dtype,
                            unet_loader=lambda f, dt: UNet3DConditionModel.from_pretrained(f, subfolder="unet",
                                                                                          torch_dtype=dt))
        if "xl" in stages:
            self._load_xl(progress)

    def _load_xl(self, progress) -> None:
        from diffusers import UNet3DConditionModel

        if self._xl is not None:
            return
        log = progress.log if progress is not None else (lambda m: None)
        settings = getattr(self, "xl_settings", None) or {}
        local = settings.get("path")
        if local:
            folder = Path(local).expanduser()
            info = local_folder(folder, spec(folder.name), "a ZeroScope XL folder",
                                "VMC_ZEROSCOPE_XL_PATH names it; unset it to use the hub's")
            size = settings.get("size") or f"{2 * self.width}x{2 * self.height}"
        else:
            found = resolve_all([RepoSpec("xl", XL_ID, COMPONENTS, WEIGHTED, "the XL upscale stage")],
                                {"xl": revision_for(XL_ID, settings.get("revision"))}, None,
                                "fp16" if _cuda() else None, log, family="ZeroScope XL", path_env=None,
                                revisions_env="VMC_ZEROSCOPE_XL_REVISION")["xl"]
            folder, info = found.folder, found.info()
            size = settings.get("size") or "x".join(map(str, XL_SIZE))
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise VmcError(f"xl_size (VMC_ZEROSCOPE_XL_SIZE) {size!r} is not WIDTHxHEIGHT",
                           "give e.g. --option xl_size=1024x576, or leave it out") from None
        xl = _XLStage()
        xl.name, xl.device, xl.dtype = "zeroscope xl", self.device, self.dtype
        xl.gradient_checkpointing = False
        xl.offload = self.offload
        xl.load_parts(folder, dtype=self.dtype, unet_loader=lambda f, dt: UNet3DConditionModel.from_pretrained(
            f, subfolder="unet", torch_dtype=dt))
        xl.width, xl.height = width, height
        self._xl = xl
        self._info["xl"] = info

    def run_cascade(self, keyframes, prompt, *, negative_prompt="", seed=0, stages=None, progress=None):
        """``xl`` when asked for: ZeroScope XL's video-to-video upscale of the decoded key-frames."""
        import cv2
        import numpy as np
        import torch

        from vmc_cli.method.sampling import ddim_sample, guided, start_noised

        frames = self.model_to_frames(keyframes)
        if "xl" not in (stages or ()):
            return frames
        if self._xl is None:
            raise RuntimeError("the xl stage is not loaded; call load(stages=('keyframes', 'xl')) first")
        xl = self._xl
        big = np.stack([cv2.resize(f, (xl.width, xl.height), interpolation=cv2.INTER_CUBIC) for f in frames])
        z = xl.frames_to_model(big)
        text, uncond = xl.encode_prompts([prompt, negative_prompt]).chunk(2)
        steps = self.defaults["sample_steps"]
        noise = torch.randn(z.shape, generator=torch.Generator("cpu").manual_seed(seed)).to(z.device, z.dtype)
        x, start = start_noised(xl.sampling_scheduler(), z, noise, steps, XL_STRENGTH)
        with torch.no_grad():
            out = ddim_sample(guided(xl.predict, text, uncond, self.defaults["guidance"]), xl.sampling_scheduler(),
                              x, steps, progress, label="xl upscale", start_timestep=start)
        return xl.model_to_frames(out)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
