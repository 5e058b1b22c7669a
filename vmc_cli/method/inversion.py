"""Inversion: the sampler's ODE run backwards, from a clean clip towards noise.

- a diffusion schedule: DDIM inversion with diffusers' inverse scheduler
  (``DDIMInverseScheduler``, :meth:`vmc_cli.method.schedule.Schedule.inverter`);
- a flow-matching schedule (``FlowMatchEulerDiscreteScheduler``): Euler steps of
  ``dx/dsigma = v`` over the sampler's sigmas in reverse order, from 0 up.

The functions take a ``predict(x, t)`` callable returning what the scheduler steps on
(epsilon for a diffusion scheduler, the velocity for a flow one:
:meth:`vmc_cli.backend.Backend.predict`), so they work with any backend and with analytic
denoisers in tests. Tensors are (batch, channels, frames, height, width).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from vmc_cli.progress import SILENT, Reporter
from vmc_cli.method.schedule import flow_inversion_sigmas, is_flow_scheduler

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def inversion_timesteps(scheduler, steps: int, strength: float = 1.0) -> torch.Tensor:
    """The timesteps an inversion of ``steps`` steps evaluates the model at, cut to the first
    ``ceil(steps * strength)``: the clip ends at the noise level after the last one (for a
    diffusion scheduler, at that timestep; for a flow one, at the next sigma up)."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    if is_flow_scheduler(scheduler):
        return flow_inversion_sigmas(scheduler, steps, strength)[:-1] * scheduler.config.num_train_timesteps
    scheduler.set_timesteps(steps)
    return scheduler.timesteps[: max(1, math.ceil(steps * strength - 1e-9))]


def kept_signal(scheduler, steps: int, strength: float = 1.0) -> dict:
    """How much of the clip an inversion keeps: the last noise level reached and ``signal`` =
    alpha there (diffusion: sqrt(abar), inverted ~ signal * clip + sqrt(1 - signal^2) * noise;
    flow: 1 - sigma, inverted ~ signal * clip + (1 - signal) * noise)."""
    if is_flow_scheduler(scheduler):
        sigma = float(flow_inversion_sigmas(scheduler, steps, strength)[-1])
        return {"final_timestep": round(sigma * scheduler.config.num_train_timesteps, 4),
                "signal": round(1.0 - sigma, 6)}
    final = int(inversion_timesteps(scheduler, steps, strength)[-1])
    abar = float(scheduler.alphas_cumprod[final])
    return {"final_timestep": final, "signal": round(abar**0.5, 6)}


@torch.no_grad()
def invert(predict: Predict, scheduler, x0: torch.Tensor, steps: int,
           progress: Reporter = SILENT, label: str = "inversion", strength: float = 1.0) -> torch.Tensor:
    """Run the sampler's deterministic ODE backwards from a clean clip towards noise.

    ``scheduler`` is a ``diffusers.DDIMInverseScheduler`` (DDIM inversion, ``predict`` gives
    epsilon) or a flow-matching one such as ``FlowMatchEulerDiscreteScheduler`` (Euler
    backwards, ``predict`` gives the velocity). With ``strength`` 1 it runs all ``steps``;
    below 1 it stops part-way (see :func:`inversion_timesteps`).
    """
    if is_flow_scheduler(scheduler):
        return _flow_invert(predict, scheduler, x0, steps, progress, label, strength)
    timesteps = inversion_timesteps(scheduler, steps, strength).to(x0.device)
    x = x0
    for t in progress.track(timesteps, label):
        eps = predict(x, t.expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x


def _flow_invert(predict, scheduler, x0, steps, progress, label, strength):
    sigmas = flow_inversion_sigmas(scheduler, steps, strength).to(x0.device)
    n = scheduler.config.num_train_timesteps
    x = x0
    for i in progress.track(range(len(sigmas) - 1), label):
        t = (sigmas[i] * n).expand(x.shape[0])
        v = predict(x, t)
        x = (x.float() + (sigmas[i + 1] - sigmas[i]) * v.float()).to(x0.dtype)
    return x


#: the name jobs, benchmarks and tests use (it inverts a flow schedule too)
ddim_invert = invert
