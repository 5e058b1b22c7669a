"""DDIM inversion with diffusers' inverse scheduler.

It takes a ``predict(x, t) -> eps`` callable, so they work with any backend
(and with analytic denoisers in tests). Tensors are
(batch, channels, frames, height, width).
"""

from __future__ import annotations

from typing import Callable

import torch

from .progress import SILENT, Reporter

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def ddim_invert(predict: Predict, scheduler, x0: torch.Tensor, steps: int,
                progress: Reporter = SILENT, label: str = "inversion") -> torch.Tensor:
    """Run the deterministic DDIM ODE backwards from a clean clip to noise.

    ``scheduler`` is a ``diffusers.DDIMInverseScheduler``; returns the noise
    at the last of ``steps`` timesteps.
    """
    scheduler.set_timesteps(steps, device=x0.device)
    x = x0
    for t in progress.track(scheduler.timesteps, label):
        eps = predict(x, t.expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x
