"""The ``animatediff`` backend: an SD1.5-family base plus a MotionAdapter, joined into
diffusers' ``UNetMotionModel``.

- Base (``--model-path``): a folder in the hub's layout or a hub id holding ``unet/``
  (``UNet2DConditionModel``), ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``;
  default ``stable-diffusion-v1-5/stable-diffusion-v1-5`` at ``VMC_ANIMATEDIFF_BASE_REVISION``
  (default: the commit pinned in ``PINNED`` below; ``main`` for an id without a
  pin). A folder written by ``AnimateDiffPipeline.save_pretrained`` also works: its
  ``unet/`` is already a ``UNetMotionModel`` and its adapter is the one in ``motion_adapter/`` (or, without that folder, the motion modules inside the UNet).
- Adapter (``--option adapter=...`` or ``VMC_ANIMATEDIFF_ADAPTER``): a ``MotionAdapter`` folder or hub id; default
  ``guoyww/animatediff-motion-adapter-v1-5-2`` at ``VMC_ANIMATEDIFF_ADAPTER_REVISION`` (pinned
  in the same way).
- The temporal attention VMC tunes is the motion modules' attention
  (``motion_modules``; q/k/v by default).

A profile records both (``models.keyframes`` is the adapter, ``models.base`` the base).
It generates with another base (``vmc generate P --model-path OTHER_BASE``, as people
use motion LoRAs with their own checkpoints: a one-line note says so), but not with
another adapter: the tuned weights belong to that adapter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vmc_cli.errors import VmcError
from vmc_cli.models.repos import RepoSpec, config_hash, resolve_all, revision_for
from vmc_latent import LatentVideoBackend, is_hub_id, local_folder

from vmc_cli.method.tune_config import GENERATE_DEFAULTS

from . import DEFAULTS, OPTIONS

#: the variables of its revision options, for the messages
REVISION_ENV = {o.name: o.env for o in OPTIONS if o.name.endswith("_revision")}

DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
#: The hub commits it loads by default, per repository (one not listed is taken at ``main``);
#: ``VMC_ANIMATEDIFF_BASE_REVISION`` and ``VMC_ANIMATEDIFF_ADAPTER_REVISION`` override them
#: (``main`` takes the newest).
#: The commits are the snapshot folder names (``models--OWNER--NAME/snapshots/<commit>``) of
#: caches that loaded these models, seen in public code and logs; the machine that wrote this
#: table had no network to check them against the hub. A pin the hub does not know fails the
#: download with a one-line error naming the variable that overrides it.
PINNED: dict[str, str] = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
    "guoyww/animatediff-motion-adapter-v1-5-2": "6167b88ffe39b4441fdf2113e77b99a6f56b7906",
}
BASE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
BASE_WEIGHTED = ("unet", "vae", "text_encoder")


def base_spec(repo_id: str) -> RepoSpec:
    return RepoSpec("base", repo_id, BASE_COMPONENTS, BASE_WEIGHTED, "the Stable Diffusion 1.5 base")


def adapter_spec(repo_id: str) -> RepoSpec:
    return RepoSpec("keyframes", repo_id, ("",), ("",), "the AnimateDiff motion adapter", index_file="config.json")


_MODULE = re.compile(r"(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.(\d+)\.transformer_blocks\.(\d+)"
                     r"\.attn([12])\.(to_q|to_k|to_v|to_out\.0)")
_ORIGINAL = re.compile(r"(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.(\d+)\.temporal_transformer"
                       r"\.transformer_blocks\.(\d+)\.attention_blocks\.([01])\.processor\.(to_q|to_k|to_v|to_out)_lora"
                       r"\.(down|up)\.weight")


def motion_lora_key(module: str, part: str) -> str:
    """diffusers' ``down_blocks.0.motion_modules.1.transformer_blocks.0.attn2.to_out.0`` -> the original
    motion-LoRA key ``down_blocks.0.motion_modules.1.temporal_transformer.transformer_blocks.0.
    attention_blocks.1.processor.to_out_lora.down.weight`` (``A`` is ``down``, ``B`` ``up``)."""
    m = _MODULE.fullmatch(module)
    if m is None:
        raise VmcError(f"{module!r} is not a motion module's attention projection", "export with --format lora")
    projection = m[5].replace(".0", "")
    return (f"{m[1]}.motion_modules.{m[2]}.temporal_transformer.transformer_blocks.{m[3]}.attention_blocks."
            f"{int(m[4]) - 1}.processor.{projection}_lora.{'down' if part == 'A' else 'up'}.weight")


def motion_lora_layout():
    """The original AnimateDiff motion-LoRA keys (guoyww's motion LoRAs), which
    AnimateDiff-Evolved's motion-LoRA loader takes: no ``unet.`` prefix, no alphas (scale 1),
    attention block 0 is diffusers' ``attn1`` and 1 its ``attn2``."""
    from vmc_cli.models.lora_files import LoraLayout

    def parse(key: str):
        m = _ORIGINAL.fullmatch(key)
        if m is None:
            return None
        projection = "to_out.0" if m[5] == "to_out" else m[5]
        return (f"{m[1]}.motion_modules.{m[2]}.transformer_blocks.{m[3]}.attn{int(m[4]) + 1}.{projection}",
                "A" if m[6] == "down" else "B")

    return LoraLayout("animatediff-motion-lora", "ComfyUI AnimateDiff-Evolved (Load AnimateDiff LoRA)",
                      motion_lora_key, parse)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class AnimateDiffBackend(LatentVideoBackend):
    #: its declared settings (the plugin registers the same ones)
    options = OPTIONS
    temporal_attention_marker = "motion_modules"
    num_frames, width, height = 16, 512, 512
    fps = 8.0
    #: its generation defaults (:data:`vmc_animatediff.DEFAULTS`, registered the same)
    defaults = {**GENERATE_DEFAULTS, **DEFAULTS}

    def lora_layouts(self) -> dict:
        """diffusers' keys (``--format lora``, ``AnimateDiffPipeline.load_lora_weights``) and the
        original motion-LoRA keys (``--format comfyui``, AnimateDiff-Evolved)."""
        return {**super().lora_layouts(), "comfyui": motion_lora_layout()}

    def unet_forward(self, x, t, text):
        # UNetMotionModel runs its 2D layers on batch x frames images and, unlike
        # UNet3DConditionModel, expects the text embeddings already repeated per frame
        # (as AnimateDiffPipeline does).
        text = text.repeat_interleave(x.shape[2], dim=0)
        return self.unet(x, t, encoder_hidden_states=text).sample

    def _hub(self, spec: RepoSpec, revision_option: str, log):
        found = resolve_all([spec], {spec.role: revision_for(spec.repo_id, self.revisions[revision_option], PINNED)},
                            None, "fp16" if _cuda() else None, log, family="AnimateDiff", path_env=None,
                            revisions_env=REVISION_ENV[revision_option])[spec.role]
        return found.folder, found.info()

    def locate(self, model_path: str | None, adapter: str | None, log):
        """(base folder, base info, adapter folder or None, adapter info, joined)."""
        base = model_path or self.setting("model_path") or DEFAULT_BASE
        adapter = self.setting("adapter", adapter)
        wanted_adapter = adapter or DEFAULT_ADAPTER
        if is_hub_id(str(base)) and is_hub_id(str(wanted_adapter)):  # one error naming both when missing
            found = resolve_all([base_spec(str(base)), adapter_spec(str(wanted_adapter))],
                                {"base": revision_for(str(base), self.revisions["base_revision"], PINNED),
                                 "keyframes": revision_for(str(wanted_adapter), self.revisions["adapter_revision"],
                                                           PINNED)},
                                None, "fp16" if _cuda() else None, log, family="AnimateDiff", path_env=None,
                                revisions_env="VMC_ANIMATEDIFF_BASE_REVISION / VMC_ANIMATEDIFF_ADAPTER_REVISION")
            return (found["base"].folder, found["base"].info(), found["keyframes"].folder,
                    found["keyframes"].info(), False)
        if is_hub_id(str(base)):
            base_folder, base_info = self._hub(base_spec(str(base)), "base_revision", log)
        else:
            base_folder = Path(base).expanduser()
            base_info = local_folder(base_folder, base_spec(base_folder.name),
                                     "a Stable Diffusion 1.5 folder in the hub's layout",
                                     "pass a base folder or hub id, or a folder AnimateDiffPipeline.save_pretrained wrote")
        unet_class = json.loads((base_folder / "unet" / "config.json").read_text()).get("_class_name")
        joined = unet_class == "UNetMotionModel"
        if adapter is None and joined:  # the pipeline folder's own adapter
            inner = base_folder / "motion_adapter"
            if (inner / "config.json").is_file():
                return base_folder, base_info, inner, {"id": str(inner.resolve()),
                                                        "revision": config_hash(inner, adapter_spec("x")),
                                                        "source": "local"}, True
            spec = RepoSpec("keyframes", "x", ("unet",), ("unet",), "motion modules")
            return base_folder, base_info, None, {"id": f"{base_info['id']}#unet",
                                                  "revision": config_hash(base_folder, spec), "source": "local"}, True
        adapter = wanted_adapter
        if is_hub_id(str(adapter)):
            folder, info = self._hub(adapter_spec(str(adapter)), "adapter_revision", log)
        else:
            folder = Path(adapter).expanduser()
            if not (folder / "config.json").is_file():
                raise VmcError(f"adapter {folder} (--option adapter / VMC_ANIMATEDIFF_ADAPTER) is not a MotionAdapter "
                               "folder (no config.json)",
                               f"pass a folder MotionAdapter.save_pretrained wrote, or a hub id such as {DEFAULT_ADAPTER}")
            info = {"id": str(folder.resolve()), "revision": config_hash(folder, adapter_spec("x")), "source": "local"}
        return base_folder, base_info, folder, info, joined

    def configure(self, *, model_path=None, progress=None, adapter=None, base_revision=None, adapter_revision=None,
                  offload=None, gradient_checkpointing=None) -> None:
        self.speed_switches(offload, gradient_checkpointing)
        self.revisions = {"base_revision": self.setting("base_revision", base_revision),
                          "adapter_revision": self.setting("adapter_revision", adapter_revision)}
        key = (model_path, adapter, *self.revisions.values())
        if getattr(self, "_located", None) is not None and self._located[0] == key:
            return
        log = progress.log if progress is not None else (lambda m: None)
        base_folder, base_info, adapter_folder, adapter_info, joined = self.locate(model_path, adapter, log)
        self._located = (key, base_folder, adapter_folder, joined)
        self._info = {"keyframes": adapter_info, "base": base_info}
        unet = json.loads((base_folder / "unet" / "config.json").read_text())
        vae = json.loads((base_folder / "vae" / "config.json").read_text())
        side = int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
        self.num_frames, self.width, self.height = 16, side, side

    def load_models(self, stages, progress=None) -> None:
        from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

        if self._unet is not None:
            return
        _, base_folder, adapter_folder, joined = self._located

        def unet_loader(folder, dt):
            if joined and adapter_folder is None or joined and adapter_folder == base_folder / "motion_adapter":
                return UNetMotionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dt)
            motion = MotionAdapter.from_pretrained(adapter_folder, torch_dtype=dt)
            if joined:  # a pipeline folder with another adapter: its 2D parts, the given motion modules
                base = UNetMotionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dt)
                base.load_motion_modules(motion)
                return base
            unet2d = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dt)
            return UNetMotionModel.from_unet2d(unet2d, motion).to(dt)

        self.load_parts(base_folder, dtype=self.dtype, unet_loader=unet_loader)
