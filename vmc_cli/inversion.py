"""DDIM inversion with diffusers' inverse scheduler.

It takes a ``predict(x, t) -> eps`` callable, so they work with any backend
(and with analytic denoisers in tests). Tensors are
(batch, channels, frames, height, width).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .progress import SILENT, Reporter

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def inversion_timesteps(scheduler, steps: int, strength: float = 1.0) -> torch.Tensor:
    """The inverse scheduler's timesteps for ``steps`` steps, cut to the first
    ``ceil(steps * strength)``: the clip ends at the noise level of the last one."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    scheduler.set_timesteps(steps)
    return scheduler.timesteps[: max(1, math.ceil(steps * strength - 1e-9))]


def kept_signal(scheduler, steps: int, strength: float = 1.0) -> dict:
    """How much of the clip an inversion keeps: the last timestep reached and
    ``signal`` = sqrt(abar) there (inverted ~ signal * clip + sqrt(1 - signal^2) * noise)."""
    final = int(inversion_timesteps(scheduler, steps, strength)[-1])
    abar = float(scheduler.alphas_cumprod[final])
    return {"final_timestep": final, "signal": round(abar**0.5, 6)}


@torch.no_grad()
def ddim_invert(predict: Predict, scheduler, x0: torch.Tensor, steps: int,
                progress: Reporter = SILENT, label: str = "inversion", strength: float = 1.0) -> torch.Tensor:
    """Run the deterministic DDIM ODE backwards from a clean clip towards noise.

    ``scheduler`` is a ``diffusers.DDIMInverseScheduler``. With ``strength`` 1
    it runs all ``steps``; below 1 it stops part-way (see :func:`inversion_timesteps`).
    """
    timesteps = inversion_timesteps(scheduler, steps, strength).to(x0.device)
    x = x0
    for t in progress.track(timesteps, label):
        eps = predict(x, t.expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x
