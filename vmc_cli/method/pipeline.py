"""The method on a loaded backend, in memory: invert a clip, sample key-frames, run the cascade.

:class:`MotionPipeline` is the one place where VMC's inference is written: ``vmc generate`` and
``vmc invert`` (``vmc_cli.jobs``), the benchmarks and the shapes backend's own check all call it.
It reads and writes no files; the jobs own the profile store and the outputs. Tensors are in the
backend's model space, (batch, channels, frames, height, width).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from vmc_cli.progress import SILENT, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class MotionPipeline:
    """Inversion, key-frame sampling and the frozen cascade on ``backend`` (already loaded, with
    whatever weights the caller applied: the base model, or a profile at some motion scale)."""

    def __init__(self, backend, progress: Reporter = SILENT):
        self.backend = backend
        self.progress = progress

    # -- weights ---------------------------------------------------------------
    def apply_profile(self, weights: dict[str, torch.Tensor], motion_scale: float = 1.0) -> None:
        """The tuned weights at ``motion_scale`` (W0 + S (W - W0), W0 the current values) into the model."""
        from vmc_cli.method.tuning import apply_weights, blend_weights

        apply_weights(self.backend.unet, blend_weights(self.backend.unet, weights, motion_scale))

    # -- inversion ---------------------------------------------------------------
    def inversion_settings(self, steps: int, strength: float = 1.0, motion_scale: float = 1.0) -> dict:
        """Everything that decides an inversion's result (a saved one is reused only when it
        matches): the backend's inversion facts, steps, strength, motion scale, the last timestep
        reached and the share of the clip's ``signal`` kept, the (empty) prompt and guidance 1."""
        from vmc_cli.method.inversion import kept_signal

        backend = self.backend
        return {**backend.inversion_info(steps), "steps": steps, "strength": strength, "motion_scale": motion_scale,
                **kept_signal(backend.inversion_scheduler(), steps, strength), "prompt": "", "guidance": 1.0}

    @torch.no_grad()
    def invert(self, clip: torch.Tensor, steps: int, strength: float = 1.0, label: str = "inversion") -> torch.Tensor:
        """DDIM-invert ``clip`` (model space) under the empty prompt, ``strength`` of the way to noise."""
        from vmc_cli.method.inversion import ddim_invert

        backend = self.backend
        empty = backend.encode_prompts([""])
        clip = clip.to(backend.device, backend.dtype)
        return ddim_invert(lambda x, t: backend.predict(x, t, empty.expand(x.shape[0], -1, -1)),
                           backend.inversion_scheduler(), clip, steps, self.progress, label=label, strength=strength)

    def start_timestep(self, steps: int, strength: float, signal: float) -> int | None:
        """Where sampling starts from an inversion: the top of the schedule after a full one (as
        the authors did, whatever signal the inversion schedule left), else the sampler's timestep
        whose noise level matches the ``signal`` the partial inversion kept (the two schedules
        may differ)."""
        from vmc_cli.method.sampling import matching_timestep

        if strength >= 1:
            return None
        return matching_timestep(self.backend.sampling_scheduler(), steps, signal)

    # -- sampling -----------------------------------------------------------------
    @torch.no_grad()
    def keyframes(self, x_t: torch.Tensor, prompts: str | list[str], *, steps: int, guidance: float,
                  negative_prompt: str = "", start_timestep: int | None = None,
                  label: str = "key-frames") -> torch.Tensor:
        """Key-frames (model space), one row per prompt, sampled from ``x_t`` with
        classifier-free guidance against ``negative_prompt``."""
        from vmc_cli.method.sampling import ddim_sample, guided

        backend = self.backend
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        text = backend.encode_prompts(prompts)
        uncond = backend.encode_prompts([negative_prompt])
        x_t = x_t.to(backend.device, backend.dtype)
        if x_t.shape[0] != len(prompts):
            x_t = x_t.expand(len(prompts), *x_t.shape[1:])
        return ddim_sample(guided(backend.predict, text, uncond, guidance), backend.sampling_scheduler(), x_t,
                           steps, self.progress, label=label, start_timestep=start_timestep)

    def transfer(self, clip: torch.Tensor, prompts: str | list[str], *, steps: int, guidance: float,
                 strength: float = 1.0, invert_steps: int | None = None, negative_prompt: str = "",
                 inverted: torch.Tensor | None = None) -> torch.Tensor:
        """Invert ``clip`` (unless ``inverted`` is given: an inversion at the same settings), then
        sample key-frames for each prompt from it: ``vmc generate``'s key-frames, in memory."""
        invert_steps = invert_steps or steps
        x_t = inverted if inverted is not None else self.invert(clip, invert_steps, strength)
        signal = self.inversion_settings(invert_steps, strength)["signal"]
        return self.keyframes(x_t, prompts, steps=steps, guidance=guidance, negative_prompt=negative_prompt,
                              start_timestep=self.start_timestep(steps, strength, signal))

    # -- cascade ------------------------------------------------------------------
    def cascade(self, keyframes: torch.Tensor, prompt: str, *, stages: tuple[str, ...], negative_prompt: str = "",
                seed: int = 0) -> np.ndarray:
        """The final frames (uint8): the key-frames themselves when no later stage is wanted,
        else the backend's frozen cascade on them."""
        later = tuple(s for s in self.backend.expand_stages(tuple(stages)) if s != "keyframes")
        if not later:
            return self.backend.model_to_frames(keyframes)
        return self.backend.run_cascade(keyframes, prompt, negative_prompt=negative_prompt, seed=seed, stages=later,
                                        progress=self.progress)
