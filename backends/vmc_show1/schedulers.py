"""diffusers schedulers whose steps compute in float32.

In half precision a scheduler step overflows near the end of the key-frame model's cosine
schedule: at t = 999, sqrt(abar) = 5e-5, so the predicted clean sample
``(x - sqrt(1 - abar) * eps) / sqrt(abar)`` reaches 1e5 and more with guidance, beyond
float16's 65504; dynamic thresholding of such a tensor then gives NaN. These subclasses
run ``step`` on float32 copies and hand the results back in the caller's dtype, so the
models can run in float16 while the sampler's arithmetic stays exact enough.
"""

from __future__ import annotations

import functools
import inspect

import torch


class Float32StepMixin:
    """``step`` in float32; the returned tensors have the dtype of ``sample``."""

    def step(self, model_output, timestep, sample, *args, **kwargs):
        out = super().step(model_output.float(), timestep, sample.float(), *args, **kwargs)
        dtype = sample.dtype
        if isinstance(out, tuple):
            return tuple(o.to(dtype) if torch.is_tensor(o) else o for o in out)
        for key, value in list(out.items()):
            if torch.is_tensor(value):
                out[key] = value.to(dtype)
        return out


def step_parameters(scheduler) -> set[str]:
    """The names ``step`` of the scheduler's diffusers class takes (past the float32 wrapper,
    whose own signature is ``*args, **kwargs``): e.g. whether it takes a ``generator``."""
    step = super(Float32StepMixin, scheduler).step if isinstance(scheduler, Float32StepMixin) else scheduler.step
    return set(inspect.signature(step).parameters)


@functools.lru_cache(maxsize=None)
def float32_steps(cls: type) -> type:
    """The subclass of the diffusers scheduler class ``cls`` with float32 steps."""
    return type(f"{cls.__name__}Float32Steps", (Float32StepMixin, cls), {"__doc__": Float32StepMixin.__doc__})


def scheduler_from_config(config: dict, default: str = "DDPMScheduler", **overrides):
    """A float32-step scheduler of the class a config names (``_class_name``; ``default``
    when it names no diffusers scheduler)."""
    import diffusers

    cls = getattr(diffusers, str(config.get("_class_name")), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        cls = getattr(diffusers, default)
    return float32_steps(cls).from_config(config, **overrides)
