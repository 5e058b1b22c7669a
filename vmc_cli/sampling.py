"""Key-frames from inverted noise with the tuned model, then the backend's frozen cascade."""

from __future__ import annotations

from typing import Callable

import torch

from .progress import SILENT, Reporter

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def matching_timestep(scheduler, steps: int, signal: float) -> int:
    """The sampler's timestep (for ``steps`` steps) to start from when the input keeps
    ``signal`` = sqrt(abar) of the clip: the least noisy one that is at least as noisy
    (abar(t) <= signal^2), so that it works when inversion and sampling use different
    noise schedules or step counts. The top timestep when the input is noisier than all."""
    scheduler.set_timesteps(steps)
    abar = scheduler.alphas_cumprod
    noisy_enough = [int(t) for t in scheduler.timesteps if float(abar[int(t)]) <= signal**2 + 1e-12]
    return min(noisy_enough) if noisy_enough else int(scheduler.timesteps.max())


@torch.no_grad()
def ddim_sample(predict: Predict, scheduler, x_t: torch.Tensor, steps: int,
                progress: Reporter = SILENT, label: str = "key-frames",
                start_timestep: int | None = None) -> torch.Tensor:
    """Sample a clean clip from ``x_t`` with a diffusers scheduler: DDIM (eta 0, its
    default) for most backends, or any other (a multistep solver such as
    ``DPMSolverMultistepScheduler`` keeps state between steps, so pass a fresh scheduler
    to every run). ``x_t`` enters at the scheduler's first timestep.

    ``start_timestep`` skips the timesteps above it (``x_t`` is at that noise
    level, e.g. after a partial inversion); None runs them all."""
    scheduler.set_timesteps(steps, device=x_t.device)
    timesteps = scheduler.timesteps
    if start_timestep is not None:
        timesteps = timesteps[timesteps <= start_timestep]
    x = x_t
    for t in progress.track(timesteps, label):
        eps = predict(scheduler.scale_model_input(x, t), t.expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x


def guided(predict_batched: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
           cond: torch.Tensor, uncond: torch.Tensor | None, guidance: float) -> Predict:
    """Classifier-free guidance as a ``predict`` callable: conditional and
    unconditional passes are batched into one call of
    ``predict_batched(x, t, text)``. With ``guidance == 1`` or no ``uncond``
    it is a single conditional pass."""
    if uncond is None or guidance == 1.0:
        return lambda x, t: predict_batched(x, t, cond.expand(x.shape[0], *cond.shape[1:]))

    def predict(x, t):
        b = x.shape[0]
        text = torch.cat([cond.expand(b, *cond.shape[1:]), uncond.expand(b, *uncond.shape[1:])])
        eps_c, eps_u = predict_batched(torch.cat([x, x]), torch.cat([t, t]), text).chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    return predict
