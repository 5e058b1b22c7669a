"""The ``shapes`` backend: a key-frame model trained on the shapes world, shipped with vmc.

- key-frames: Show-1's video UNet at a tiny size, 8 frames of 32x32 pixels in [-1, 1],
  trained from scratch by ``python -m vmc_shapes.train`` (recipe, time and loss in
  ``weights/training.json``); it predicts v (its scheduler config says so), and the core
  turns that into the epsilon the method works on (``vmc_cli.method.schedule.Schedule.epsilon``);
- text: the small CLIP text encoder trained with it, over the hashing word tokenizer;
- later stages: the tiny backend's cascade (random weights; 8 -> 29 frames, then 1.5x),
  run at lower strengths so that it stays close to its deterministic baseline (in-betweens
  that move the shape along the shift between key-frames, bilinear upsampling).

The weights are a folder in the diffusers layout, loaded with ``from_pretrained``
like any checkpoint: the shipped one, or another one given by ``--model-path`` or
``$VMC_SHAPES_PATH`` (e.g. a retrained model).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vmc_cli.backend import Backend
from vmc_cli.errors import VmcError
from vmc_cli.models.repos import weights_revision  # noqa: F401  (tests import it from here)
from vmc_pixel.tiny import SmallTextModel, TinyBackend

from vmc_cli.method.tune_config import GENERATE_DEFAULTS

from . import DEFAULTS, OPTIONS

#: the tiny cascade at lower strengths: its random weights add noise in proportion
#: and motion-compensated in-betweens, so that a shape travels between key-frames instead of
#: fading out in one place and in at the next
CASCADE = {"interpolation": {"strength": 0.2, "baseline": "motion"}, "upscale": {"strength": 0.15}}


class ShapesBackend(SmallTextModel, Backend):
    #: ``vmc export --format lora``: keys ``unet.<module>.lora_A.weight`` (the SVD of W - W0)
    lora_prefix = "unet"
    num_frames = 8
    width, height = 32, 32
    fps = 8.0
    #: its generation defaults (:data:`vmc_shapes.DEFAULTS`, registered the same)
    defaults = {**GENERATE_DEFAULTS, **DEFAULTS}
    cascade_stages = ("interpolation", "upscale")

    #: its declared settings (the plugin registers the same ones)
    options = OPTIONS

    def __init__(self, model_path: str | os.PathLike | None = None):
        from .model import WEIGHTS

        self.folder = Path(model_path or self.setting("model_path") or WEIGHTS)
        self._cascade = TinyBackend(stage_settings=CASCADE)
        self._unet = None
        self._text_encoder = None
        self._tokenizer = None
        self._embeddings: dict[str, torch.Tensor] = {}
        self._scheduler: dict | None = None
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    # -- loading -----------------------------------------------------------
    def _use_folder(self, model_path) -> None:
        folder = Path(model_path) if model_path else self.folder
        needed = ["unet/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json"]
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing:
            raise VmcError(f"no shapes model in {folder} (missing {missing[0]})",
                           "train one with `python -m vmc_shapes.train --out FOLDER`, or drop --model-path")
        if self._unet is not None and folder != self.folder:
            raise VmcError("the shapes backend is already loaded from another folder")
        self.folder = folder

    def configure(self, *, model_path=None, progress=None, **options) -> None:
        self._use_folder(model_path)

    def load_models(self, stages, progress=None) -> None:
        if "keyframes" in stages and self._unet is None:
            from .model import load

            self._unet, self._text_encoder, self._tokenizer = load(self.folder, self.device, self.dtype)
            # Trained without dropout (in eval mode): tuning, which runs in train mode, must see
            # the same network, not one with a tenth of its temporal-conv activations dropped.
            for module in self._unet.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
            self._scheduler = json.loads((self.folder / "scheduler" / "scheduler_config.json").read_text())
        later = tuple(s for s in stages if s in self.cascade_stages)
        if later:
            self._cascade.load(device=str(self.device), dtype=str(self.dtype).replace("torch.", ""), stages=later)

    def model_info(self):
        info = {"keyframes": {"id": "vmc-shapes/keyframes", "revision": weights_revision(self.folder)}}
        tiny = self._cascade.model_info()
        info.update({name: tiny[name] for name in self.cascade_stages})
        return info

    # -- key-frame model ---------------------------------------------------
    def model_output(self, x, t, text):
        """The model's v (its config says ``v_prediction``; the core turns it into epsilon)."""
        return self.unet(x.to(self.dtype), t, text).sample

    def noise_scheduler_config(self):
        # The training schedule as the model's files state it (v-prediction).
        config = self._scheduler or json.loads((self.folder / "scheduler" / "scheduler_config.json").read_text())
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        return {"_class_name": "DDPMScheduler", **config}

    # -- cascade -------------------------------------------------------------
    def run_cascade(self, keyframes, prompt, *, negative_prompt="", seed=0, stages=None, progress=None):
        return self._cascade.run_cascade(keyframes.float(), prompt, negative_prompt=negative_prompt, seed=seed,
                                         stages=stages, progress=progress)
