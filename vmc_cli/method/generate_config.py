"""Generation settings: what the user gave, checked once, then resolved once against the backend
(:class:`GenerateConfig`, as :class:`vmc_cli.method.tune_config.TuneConfig` is for tuning). The checks,
the inversion's cache key and what a result records all read this one object.

Kept free of torch and of any model, so a bad value fails before anything loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from vmc_cli.checks import (check_counts, check_finite, check_fps, check_motion_scale, check_seed, check_steps_fit,
                     check_strength, or_default)
from vmc_cli.errors import VmcError

INITS = ("inverted", "noise")
INVERT_WITH = ("profile", "base")


@dataclass(frozen=True)
class GenerateConfig:
    """One ``vmc generate`` (or ``vmc invert``): None is "the backend's default" until
    :meth:`resolve` fills it in from the backend's registered defaults."""

    steps: int | None = None
    guidance: float | None = None
    invert_steps: int | None = None
    negative_prompt: str | None = None
    strength: float | None = None
    motion_scale: float | None = None
    #: ``inverted`` (the method) or ``noise``; None: inverted when the profile has its clip
    init: str | None = None
    #: ``profile`` (the tuned model inverts, as VMC's code does) or ``base``; None: profile
    invert_with: str | None = None
    seed: int = 0
    stages: str = "all"
    fps: float | None = None

    def __post_init__(self):
        """Every value that needs no model, checked: one line for the first bad one."""
        self.stage_names()
        if self.init not in (None, *INITS):
            raise VmcError(f"unknown --init {self.init!r}", "use 'inverted' or 'noise'")
        if self.invert_with not in (None, *INVERT_WITH):
            raise VmcError(f"unknown --invert-with {self.invert_with!r}", "use 'profile' or 'base'")
        check_counts(steps=self.steps, invert_steps=self.invert_steps)
        check_strength(self.strength)
        check_motion_scale(self.motion_scale)
        check_finite(guidance=self.guidance)
        check_fps(self.fps)
        check_seed(self.seed)

    def stage_names(self) -> tuple[str, ...]:
        """``--stages`` as names (``all,xl`` -> ("all", "xl")); the backend checks what it has."""
        wanted = tuple(part.strip() for part in str(self.stages).split(",") if part.strip())
        if not wanted or "keyframes" not in wanted and "all" not in wanted:
            raise VmcError(f"unknown --stages {self.stages!r}",
                           "use 'all', 'keyframes', or a list with extra stages of the backend, e.g. 'all,xl'")
        return wanted

    @property
    def base_first(self) -> bool:
        """The base model inverts, the profile's weights come after (``--invert-with base``)."""
        return self.init == "inverted" and self.invert_with == "base"

    @property
    def inversion_scale(self) -> float | None:
        """The motion scale of the weights that invert the clip: 0 when the base model does."""
        return 0.0 if self.base_first else self.motion_scale

    def resolve(self, backend, init: str) -> "GenerateConfig":
        """Every setting filled in: given, else the backend's default; ``init`` as the profile
        allows (:func:`vmc_cli.jobs.resolve_init`); the steps checked against its schedule."""
        d = backend.defaults
        resolved = replace(
            self, init=init, invert_with=self.invert_with or "profile",
            steps=or_default(self.steps, d["sample_steps"]), guidance=or_default(self.guidance, d["guidance"]),
            invert_steps=or_default(self.invert_steps, d["invert_steps"]),
            negative_prompt=or_default(self.negative_prompt, d.get("negative_prompt", "")),
            strength=or_default(self.strength, d.get("strength", 1.0)),
            motion_scale=or_default(self.motion_scale, d.get("motion_scale", 1.0)))
        check_steps_fit(backend, steps=resolved.steps,
                        **({"invert_steps": resolved.invert_steps} if init == "inverted" else {}))
        return resolved

    def record(self) -> dict:
        """What each result says it was made with (``vmc generate --json``)."""
        inverted = self.init == "inverted"
        return {"seed": self.seed, "motion_scale": self.motion_scale, "steps": self.steps, "guidance": self.guidance,
                "init": self.init, "invert_with": self.invert_with if inverted else None,
                "strength": self.strength if inverted else None, "stages": self.stages}

    def to_dict(self) -> dict:
        return asdict(self)
