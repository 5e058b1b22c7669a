"""Tuning settings: the paper's defaults, a backend's own, what the user gave.

Kept free of torch so that ``vmc tune --help`` (which lists every backend's defaults)
and option checking stay fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from vmc_cli.errors import VmcError

#: motion-distillation losses (``vmc_cli.method.motion.motion_distillation_loss`` documents them)
LOSSES = ("cos", "l2", "official", "x0cos", "noise")
TARGETS = ("qkv", "temporal", "attention")


@dataclass
class TuneConfig:
    steps: int = 400
    lr: float = 1e-4
    loss: str = "cos"
    seed: int = 0
    target: str = "qkv"
    stride: int = 1
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    batch_size: int = 1
    timestep_range: tuple[int, int] = field(default=(0, -1))  # -1: the schedule's last timestep

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise VmcError(f"unknown loss {self.loss!r}", f"choose one of {', '.join(LOSSES)}")
        if self.steps < 1:
            raise VmcError(f"--steps must be at least 1, got {self.steps}",
                           "give a whole number of optimisation steps, e.g. --steps 400, or leave it out")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise VmcError(f"--lr must be a positive number, got {self.lr}",
                           "e.g. --lr 1e-4, or leave it out for the backend's")
        if self.stride < 1:
            raise VmcError(f"--residual-stride must be at least 1, got {self.stride}",
                           "e.g. --residual-stride 1 (the paper's)")
        if self.target not in TARGETS:
            import re

            try:
                re.compile(self.target)
            except re.error as exc:
                raise VmcError(f"--target {self.target!r} is not a valid regular expression ({exc})",
                               f"use one of {', '.join(TARGETS)} or a regular expression over parameter names"
                               ) from None
        lo, hi = self.timestep_range = tuple(int(v) for v in self.timestep_range)
        if lo < 0 or (hi >= 0 and hi < lo):
            raise VmcError(f"--timesteps {lo}:{hi} is not a range of timesteps",
                           "give LO:HI with 0 <= LO <= HI, e.g. 0:999")

    def to_dict(self) -> dict:
        return asdict(self)


#: TuneConfig fields a backend may give its own defaults for (see ``register_backends``)
BACKEND_TUNABLE = ("steps", "lr", "loss", "target", "timestep_range")


def check_tune_defaults(backend: str, defaults: dict) -> dict:
    """``defaults`` if every key is a field a backend may set, else an error naming the plugin's mistake."""
    unknown = sorted(set(defaults) - set(BACKEND_TUNABLE))
    if unknown:
        raise VmcError(f"backend {backend!r} registers unknown tuning defaults: {', '.join(unknown)}",
                       f"a backend may set {', '.join(BACKEND_TUNABLE)}")
    return defaults


def resolve_config(defaults: dict, **given) -> TuneConfig:
    """A TuneConfig from what the user gave (None: not given), else the backend's
    ``defaults``, else the paper's (TuneConfig's own)."""
    values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    return TuneConfig(**values)


def describe_defaults(defaults: dict) -> str:
    """One line: the tuning settings that ``defaults`` gives (the paper's where it is silent)."""
    c = resolve_config(defaults)
    lo, hi = c.timestep_range
    return (f"--loss {c.loss} --target {c.target} --steps {c.steps} --lr {c.lr:g}"
            + ("" if (lo, hi) == (0, -1) else f" --timesteps {lo}:{hi}"))




#: the generation settings of the method (docs/method.md: 75 inversion and sampling steps, guidance
#: 9, the whole inversion, the profile as tuned); a backend registers its own where it departs
GENERATE_DEFAULTS = {"invert_steps": 75, "sample_steps": 75, "guidance": 9.0, "negative_prompt": "",
                     "strength": 1.0, "motion_scale": 1.0}


def check_generate_defaults(backend: str, defaults: dict) -> dict:
    """The method's generation defaults with ``defaults`` (a backend's registration) over them;
    an unknown key is the plugin's mistake, one line."""
    unknown = sorted(set(defaults) - set(GENERATE_DEFAULTS))
    if unknown:
        raise VmcError(f"backend {backend!r} registers unknown generation defaults: {', '.join(unknown)}",
                       f"fix or uninstall the plugin (known: {', '.join(GENERATE_DEFAULTS)})")
    return {**GENERATE_DEFAULTS, **defaults}


def describe_generate_defaults(defaults: dict) -> str:
    """One line: ``--steps 50 --invert-steps 50 --guidance 5 --strength 1 --motion-scale 1``."""
    d = {**GENERATE_DEFAULTS, **defaults}
    line = (f"--steps {d['sample_steps']} --invert-steps {d['invert_steps']} --guidance {d['guidance']:g} "
            f"--strength {d['strength']:g} --motion-scale {d['motion_scale']:g}")
    return line + (f" --negative-prompt {d['negative_prompt']!r}" if d["negative_prompt"] else "")
