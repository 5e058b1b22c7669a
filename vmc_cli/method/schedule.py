"""The noise algebra, once, from a backend's scheduler config (docs/method.md, section 1).

A backend states facts: its key-frame model's training schedule (a diffusers scheduler
config, :meth:`vmc_cli.backend.Backend.noise_scheduler_config`) and what the model predicts
(the config's ``prediction_type``, or :attr:`Backend.prediction_type`). :class:`Schedule`
turns those into everything the method needs, for two families:

- **diffusion** (DDPM/DDIM configs): ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` at an
  integer timestep ``t``; the model predicts ``epsilon``, ``v_prediction``
  (``v = sqrt(abar) eps - sqrt(1 - abar) x0``) or ``sample`` (x0);
- **flow** (rectified flow as in diffusers' ``FlowMatchEulerDiscreteScheduler``, Wan, LTX):
  ``x_t = (1 - sigma) x0 + sigma eps`` with ``sigma = t / num_train_timesteps``; the model
  predicts the velocity ``v = eps - x0`` (prediction type ``flow``).

Every schedule is written as ``x_t = alpha_t x0 + sigma_t eps`` (:meth:`Schedule.coefficients`),
so the rest of the method (the motion loss, the kept signal, the start of a partial sampling)
is the same for both. Tensors are (batch, channels, frames, height, width); timesteps are a
tensor of shape (batch,) or a scalar.
"""

from __future__ import annotations

import json
import math

import torch

#: prediction types a schedule understands; ``flow`` is a rectified-flow velocity (eps - x0)
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")


def is_flow_config(config: dict) -> bool:
    """A flow-matching config: a ``FlowMatch...`` scheduler class, or prediction type ``flow``."""
    return "FlowMatch" in str(config.get("_class_name", "")) or config.get("prediction_type") in ("flow",
                                                                                                 "flow_prediction")


def is_flow_scheduler(scheduler) -> bool:
    """A flow-matching diffusers scheduler (it has ``sigmas`` and no ``alphas_cumprod``)."""
    return "FlowMatch" in type(scheduler).__name__ or (hasattr(scheduler, "sigmas")
                                                       and not hasattr(scheduler, "alphas_cumprod"))


def start_index(steps: int, strength: float) -> int:
    """Index into a sampler's ``steps`` timesteps where a partial run at ``strength`` starts:
    the last ``round(steps * strength)`` steps run (at least 1, at most all), as in diffusers'
    video-to-video pipelines."""
    return steps - max(1, min(steps, int(round(steps * strength))))


def strength_start(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The timestep a partial (video-to-video) sampling at ``strength`` starts from, for a diffusers
    scheduler set to ``steps`` steps (this sets it): the input is noised to it, and sampling runs
    the timesteps from it down (``start_timestep`` of :func:`vmc_cli.method.sampling.ddim_sample`)."""
    scheduler.set_timesteps(steps)
    return scheduler.timesteps[start_index(steps, strength)]


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


class Schedule:
    """The noise algebra of one training schedule (see the module's docstring).

    ``config``: a diffusers scheduler config; ``prediction_type`` overrides the config's
    (a backend whose files say nothing, or say it wrong)."""

    def __init__(self, config: dict, prediction_type: str | None = None):
        self.config = {k: v for k, v in dict(config).items()}
        self.flow = is_flow_config(self.config)
        kind = prediction_type or ("flow" if self.flow else self.config.get("prediction_type") or "epsilon")
        if kind == "flow_prediction":
            kind = "flow"
        if kind not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction type {kind!r}; one of {', '.join(PREDICTION_TYPES)}")
        if (kind == "flow") != self.flow:
            raise ValueError(f"prediction type {kind!r} does not fit a "
                             f"{'flow-matching' if self.flow else 'diffusion'} schedule")
        self.prediction_type = kind
        self.num_train_timesteps = int(self.config.get("num_train_timesteps", 1000))
        if not self.flow:
            from diffusers import DDPMScheduler

            # the training schedule as diffusers computes it (betas -> alphas_cumprod), float32
            self._ddpm = DDPMScheduler.from_config({**self.config, "prediction_type": "epsilon"})
            self.alphas_cumprod = self._ddpm.alphas_cumprod.to(torch.float32)

    @classmethod
    def of(cls, backend) -> "Schedule":
        """The backend's key-frame schedule (cached on it while its config stays the same)."""
        config = backend.noise_scheduler_config()
        key = (json.dumps(config, sort_keys=True, default=str), getattr(backend, "prediction_type", None))
        cached = getattr(backend, "_vmc_schedule", None)
        if cached is None or cached[0] != key:
            cached = (key, cls(config, key[1]))
            backend._vmc_schedule = cached
        return cached[1]

    # -- the forward process -------------------------------------------------------------
    def sigma_of(self, t) -> torch.Tensor:
        """Flow: ``sigma = t / num_train_timesteps``, float32, shape (batch,)."""
        return torch.as_tensor(t, dtype=torch.float32).reshape(-1) / self.num_train_timesteps

    def abar(self, t) -> torch.Tensor:
        """(batch,) float32: abar_t for a diffusion schedule; for a flow one the variance-preserving
        equivalent ``alpha^2 / (alpha^2 + sigma^2)`` (same signal-to-noise ratio), so that weights
        written in abar (the ``l2`` loss's ``(1 - abar) / abar`` = 1 / SNR) mean the same."""
        if not self.flow:
            t = torch.as_tensor(t).reshape(-1).long().cpu()
            return self.alphas_cumprod[t]
        alpha, sigma = self.coefficients(t)
        return alpha**2 / (alpha**2 + sigma**2)

    def coefficients(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, sigma_t), float32 of shape (batch,), with ``x_t = alpha_t x0 + sigma_t eps``."""
        if self.flow:
            sigma = self.sigma_of(t)
            return 1 - sigma, sigma
        abar = self.abar(t)
        return abar.sqrt(), (1 - abar).sqrt()

    def variance_preserving(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """``x_t`` in the variance-preserving form ``sqrt(abar) x0 + sqrt(1 - abar) eps`` with
        :meth:`abar`: itself for a diffusion schedule, ``x_t / sqrt(alpha^2 + sigma^2)`` for a
        flow one, so that formulas written for DDPM (the ``x0cos`` loss's Tweedie estimate) hold."""
        if not self.flow:
            return x_t
        alpha, sigma = self.coefficients(t)
        scale = (alpha**2 + sigma**2).sqrt().to(x_t.device)
        return (x_t.float() / _column(scale.expand(x_t.shape[0]) if scale.numel() == 1 else scale, x_t)).to(x_t.dtype)

    def signal(self, t) -> float:
        """alpha_t at one timestep: the share of the clean clip a noisy one keeps."""
        return float(self.coefficients(t)[0].reshape(-1)[0])

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """``x_t = alpha_t x0 + sigma_t eps`` (diffusion: diffusers' ``add_noise`` itself)."""
        t = torch.as_tensor(t).reshape(-1)
        if not self.flow:
            return self._ddpm.add_noise(x0, eps, t.long().cpu())
        sigma = _column(self.sigma_of(t).to(x0.device, x0.dtype), x0)
        return (1 - sigma) * x0 + sigma * eps

    # -- predictions -----------------------------------------------------------------------
    def _diffusion_terms(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        abar = _column(self.alphas_cumprod.to(x.device)[t.long()], x)
        return abar.sqrt(), (1 - abar).sqrt()

    def _flow_sigma(self, x: torch.Tensor, t) -> torch.Tensor:
        sigma = self.sigma_of(t).to(x.device)
        return _column(sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma, x)

    def epsilon(self, output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The noise ``eps`` a model ``output`` (of this schedule's prediction type) implies for
        the noisy input ``x_t``, in ``output``'s dtype:

        - epsilon: the output;
        - v_prediction: ``sqrt(abar) v + sqrt(1 - abar) x_t``;
        - sample: ``(x_t - sqrt(abar) x0) / sqrt(1 - abar)``;
        - flow: ``x_t + (1 - sigma) v``."""
        kind = self.prediction_type
        if kind == "epsilon":
            return output
        if kind == "flow":
            sigma = self._flow_sigma(x_t, t)
            return (x_t.float() + (1 - sigma) * output.float()).to(output.dtype)
        a, s = self._diffusion_terms(x_t, t)
        if kind == "v_prediction":
            return (a * output.float() + s * x_t.float()).to(output.dtype)
        return ((x_t.float() - a * output.float()) / s).to(output.dtype)  # sample

    def x0(self, output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The clean clip a model ``output`` implies (Tweedie's estimate), in ``output``'s dtype:

        - epsilon: ``(x_t - sqrt(1 - abar) eps) / sqrt(abar)``;
        - v_prediction: ``sqrt(abar) x_t - sqrt(1 - abar) v``;
        - sample: the output;
        - flow: ``x_t - sigma v``."""
        kind = self.prediction_type
        if kind == "sample":
            return output
        if kind == "flow":
            sigma = self._flow_sigma(x_t, t)
            return (x_t.float() - sigma * output.float()).to(output.dtype)
        a, s = self._diffusion_terms(x_t, t)
        if kind == "v_prediction":
            return (a * x_t.float() - s * output.float()).to(output.dtype)
        return ((x_t.float() - s * output.float()) / a).to(output.dtype)  # epsilon

    def sampler_output(self, output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """What this schedule's samplers step on: epsilon for diffusion (DDIM and the other
        diffusers schedulers are configured for it, :meth:`sampler_config`), the velocity
        itself for flow (an Euler step needs it at sigma = 1, where epsilon says nothing)."""
        return output if self.flow else self.epsilon(output, x_t, t)

    # -- samplers ------------------------------------------------------------------------------
    def sampler_config(self) -> dict:
        """The config for the samplers: the training schedule, with prediction type epsilon for
        a diffusion schedule (the core hands them epsilon, :meth:`sampler_output`)."""
        if self.flow:
            return dict(self.config)
        return {**self.config, "prediction_type": "epsilon"}

    def sampler(self):
        """A fresh key-frame sampler: DDIM for diffusion, flow-matching Euler for flow."""
        if self.flow:
            from diffusers import FlowMatchEulerDiscreteScheduler

            return FlowMatchEulerDiscreteScheduler.from_config(self.sampler_config())
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.sampler_config())

    def inverter(self):
        """A fresh inversion scheduler: DDIM's inverse for diffusion; for flow the same Euler
        scheduler as :meth:`sampler` (the core walks its sigmas backwards,
        :func:`vmc_cli.method.inversion.ddim_invert`)."""
        if self.flow:
            return self.sampler()
        from diffusers import DDIMInverseScheduler

        return DDIMInverseScheduler.from_config(self.sampler_config())


# -- flow-matching sigma grids (used by vmc_cli.method.inversion and vmc_cli.method.sampling) ----------------
def flow_grid(scheduler, steps: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps, sigmas) of a flow-matching scheduler set to ``steps`` steps: sigmas run from
    the noisiest down to 0 (one more than the timesteps), float32."""
    scheduler.set_timesteps(steps, device=device)
    sigmas = scheduler.sigmas.to(torch.float32)
    return scheduler.timesteps, sigmas


def flow_inversion_sigmas(scheduler, steps: int, strength: float = 1.0) -> torch.Tensor:
    """The sigmas a flow inversion walks, from 0 upwards: the sampler's grid reversed, cut to the
    first ``ceil(steps * strength)`` steps (one more sigma than steps)."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    _, sigmas = flow_grid(scheduler, steps)
    up = sigmas.flip(0)  # 0, ..., sigma_max
    n = max(1, math.ceil(steps * strength - 1e-9))
    return up[: n + 1]
