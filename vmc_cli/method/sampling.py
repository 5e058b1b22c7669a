"""Key-frames from inverted noise with the tuned model, then the backend's frozen cascade.

Samplers take a ``predict(x, t)`` callable returning what the scheduler steps on: epsilon
for a diffusion scheduler (DDIM and the other diffusers schedulers), the velocity for a
flow-matching one (:meth:`vmc_cli.backend.Backend.predict` gives the right one).
"""

from __future__ import annotations

from typing import Callable

import torch

from vmc_cli.progress import SILENT, Reporter
from vmc_cli.method.schedule import flow_grid, is_flow_scheduler, start_index, strength_start  # noqa: F401 (re-exported)

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def matching_timestep(scheduler, steps: int, signal: float) -> int | float:
    """The sampler's timestep (for ``steps`` steps) to start from when the input keeps
    ``signal`` of the clip (sqrt(abar) for diffusion, 1 - sigma for flow): the least noisy
    one that is at least as noisy (its signal <= ``signal``), so that it works when inversion
    and sampling use different noise schedules or step counts. The top timestep when the input
    is noisier than all."""
    if is_flow_scheduler(scheduler):
        timesteps, sigmas = flow_grid(scheduler, steps)
        # (the kept signal is rounded to 6 digits: a tolerance of 1e-6 finds its own sigma again)
        noisy_enough = [float(t) for t, s in zip(timesteps, sigmas) if 1.0 - float(s) <= signal + 1e-6]
        return min(noisy_enough) if noisy_enough else float(timesteps.max())
    scheduler.set_timesteps(steps)
    abar = scheduler.alphas_cumprod
    noisy_enough = [int(t) for t in scheduler.timesteps if float(abar[int(t)]) <= signal**2 + 1e-12]
    return min(noisy_enough) if noisy_enough else int(scheduler.timesteps.max())


@torch.no_grad()
def sample(predict: Predict, scheduler, x_t: torch.Tensor, steps: int,
           progress: Reporter = SILENT, label: str = "key-frames",
           start_timestep: int | float | None = None) -> torch.Tensor:
    """Sample a clean clip from ``x_t`` with a diffusers scheduler: DDIM (eta 0, its
    default) for most backends, or any other (a multistep solver such as
    ``DPMSolverMultistepScheduler`` keeps state between steps, so pass a fresh scheduler
    to every run), or flow-matching Euler (``FlowMatchEulerDiscreteScheduler``:
    ``x += (sigma_next - sigma) v``). ``x_t`` enters at the scheduler's first timestep.

    ``start_timestep`` skips the timesteps above it (``x_t`` is at that noise
    level, e.g. after a partial inversion); None runs them all."""
    if is_flow_scheduler(scheduler):
        return _flow_sample(predict, scheduler, x_t, steps, progress, label, start_timestep)
    scheduler.set_timesteps(steps, device=x_t.device)
    timesteps = scheduler.timesteps
    if start_timestep is not None:
        timesteps = timesteps[timesteps <= start_timestep]
    x = x_t
    for t in progress.track(timesteps, label):
        eps = predict(scheduler.scale_model_input(x, t), t.expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x


def _flow_sample(predict, scheduler, x_t, steps, progress, label, start_timestep):
    timesteps, sigmas = flow_grid(scheduler, steps)
    first = 0
    if start_timestep is not None:
        later = (timesteps <= float(start_timestep) + 1e-6).nonzero()
        first = int(later[0]) if len(later) else len(timesteps)
    sigmas = sigmas.to(x_t.device)
    x = x_t
    for i in progress.track(range(first, len(timesteps)), label):
        v = predict(x, timesteps[i].to(x.device).expand(x.shape[0]))
        x = (x.float() + (sigmas[i + 1] - sigmas[i]) * v.float()).to(x_t.dtype)
    return x


#: the name jobs, benchmarks and tests use (it samples a flow schedule too)
ddim_sample = sample


def start_noised(scheduler, x: torch.Tensor, noise: torch.Tensor, steps: int,
                 strength: float) -> tuple[torch.Tensor, int | float]:
    """Video-to-video: ``x`` noised with ``noise`` to where a sampling of ``steps`` steps at
    ``strength`` starts (:func:`vmc_cli.method.schedule.strength_start`), and that timestep (give it
    to :func:`sample` as ``start_timestep``)."""
    start = strength_start(scheduler, steps, strength)
    if is_flow_scheduler(scheduler):
        sigma = float(start) / scheduler.config.num_train_timesteps
        return (1 - sigma) * x + sigma * noise, float(start)
    return scheduler.add_noise(x, noise, start.reshape(1).repeat(x.shape[0])), int(start)


def guided(predict_batched: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
           cond: torch.Tensor, uncond: torch.Tensor | None, guidance: float, *,
           uncond_first: bool = False, channels: int | None = None) -> Predict:
    """Classifier-free guidance as a ``predict`` callable: conditional and
    unconditional passes are batched into one call of
    ``predict_batched(x, t, text)``. With ``guidance == 1`` or no ``uncond``
    it is a single conditional pass.

    Guidance is linear, so it works on any prediction (epsilon, v, a flow velocity) alike.
    ``uncond_first`` puts the unconditional rows first in the batch (as some pipelines do);
    ``channels`` guides only the first ``channels`` output channels and takes the rest (a
    learned-variance head) from the conditional pass."""
    if uncond is None or guidance == 1.0:
        return lambda x, t: predict_batched(x, t, cond.expand(x.shape[0], *cond.shape[1:]))

    def predict(x, t):
        b = x.shape[0]
        rows = [cond.expand(b, *cond.shape[1:]), uncond.expand(b, *uncond.shape[1:])]
        out = predict_batched(torch.cat([x, x]), torch.cat([t, t]), torch.cat(rows[::-1] if uncond_first else rows))
        out_u, out_c = out.chunk(2)[::-1] if not uncond_first else out.chunk(2)
        if channels is None or out.shape[1] == channels:
            return out_u + guidance * (out_c - out_u)
        guided_part = out_u[:, :channels] + guidance * (out_c[:, :channels] - out_u[:, :channels])
        return torch.cat([guided_part, out_c[:, channels:]], dim=1)

    return predict
