"""Checks of command-line values that need no clip and no model: each bad value is one
:class:`~vmc_cli.errors.VmcError` (message and hint) before any work starts."""

from __future__ import annotations

import math
from pathlib import Path

from vmc_cli.backend import DTYPES
from vmc_cli.errors import VmcError


def check_dtype(dtype: str | None) -> str | None:
    if dtype is not None and dtype not in DTYPES:
        raise VmcError(f"unknown --dtype {dtype!r}", f"use one of {', '.join(DTYPES)}")
    return dtype


def check_counts(**options: int | None) -> None:
    """Step counts given on the command line must be >= 1 (checked before any loading)."""
    for option, value in options.items():
        if value is not None and value < 1:
            name = f"--{option.replace('_', '-')}"
            raise VmcError(f"{name} must be at least 1, got {value}",
                           f"give a whole number of 1 or more, e.g. {name} 50, or leave it out for the default")


#: the highest frame rate taken (higher ones only make a resampled clip or a video enormous)
MAX_FPS = 1000.0


#: the largest key-frame side taken by --width / --height
MAX_SIDE = 4096


#: seeds are recorded in TOML and JSON, whose integers are 64-bit
MAX_SEED = 2**63 - 1


def check_finite(**options: float | None) -> None:
    """Floating-point options must be numbers: nan and inf pass the command line's parser."""
    for option, value in options.items():
        if value is not None and not math.isfinite(value):
            name = f"--{option.replace('_', '-')}"
            raise VmcError(f"{name} must be a finite number, got {value}",
                           f"give a number such as {name} 1.5, or leave it out for the default")


def check_fps(fps: float | None) -> None:
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise VmcError(f"--fps must be a number of frames per second above 0 and at most {MAX_FPS:g}, got {fps}",
                       "e.g. --fps 8, or leave it out to keep the clip's (or the backend's) own rate")


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise VmcError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {seed}", "e.g. --seed 0")


def check_size(**sides: int | None) -> None:
    """--width / --height: None is the model's own; anything given must be a usable size."""
    for option, value in sides.items():
        if value is not None and not 1 <= value <= MAX_SIDE:
            raise VmcError(f"--{option} must be a number of pixels from 1 to {MAX_SIDE}, got {value}",
                           f"e.g. --{option} 256 (latent backends: a multiple of 64), or leave it out for the model's")


def check_strength(strength: float | None) -> None:
    """None (not given: the backend's default) passes; anything else must be in (0, 1]."""
    if strength is not None and not 0 < strength <= 1:
        raise VmcError(f"--strength must be in (0, 1], got {strength}",
                       "1 runs the whole inversion (the method); lower values keep more of the clip")


def or_default(value, default):
    return default if value is None else value


def check_options(*, checkpoint_every: int = 0, fps: float | None = None, width: int | None = None,
                  height: int | None = None, frames: int | None = None, stride: int = 1,
                  seed: int | None = None) -> None:
    """The tune options that need no clip and no model, checked before anything is read."""
    if checkpoint_every < 0:
        raise VmcError(f"--checkpoint-every must be 0 (never) or more, got {checkpoint_every}",
                       "e.g. --checkpoint-every 50, or 0 for no checkpoints")
    check_fps(fps)
    check_size(width=width, height=height)
    if frames is not None and frames < 2:
        raise VmcError(f"--frames must be at least 2, got {frames}", "e.g. --frames 8, or leave it out for the backend's")
    if stride < 1:
        raise VmcError(f"--stride must be at least 1, got {stride}", "e.g. --stride 2 to take every other frame")
    if seed is not None:
        check_seed(seed)


def check_steps_fit(backend, **steps: int) -> None:
    """Sampling and inversion steps cannot outnumber the schedule's timesteps (diffusers says so
    with a ValueError, after the model has loaded; here as one line with what to type)."""
    limit = int(backend.sampling_scheduler().config.num_train_timesteps)
    for option, value in steps.items():
        if value > limit:
            name = f"--{option.replace('_', '-')}"
            raise VmcError(f"{name} {value} is more than the {limit} timesteps of {backend.name}'s schedule",
                           f"give {name} {limit} or fewer (50 to 100 is usual)")


def same_file_twice(options: list[tuple[str, list[Path] | None]]) -> None:
    """Refuse two outputs of one run that are the same file (the second would overwrite the first)."""
    import os

    from vmc_cli.io.video import stream_of

    seen: dict[str, str] = {}
    for option, paths in options:
        for path in paths or []:
            if stream_of(path) is not None:
                continue  # /dev/null twice is fine
            key = os.path.realpath(path)
            if key in seen:
                raise VmcError(f"{option} {path} is the same file as {seen[key]}", "give each output its own path")
            seen[key] = f"{option} {path}"


def check_motion_scale(scale: float | None) -> None:
    if scale is not None and not (math.isfinite(scale) and scale >= 0):
        raise VmcError(f"--motion-scale must be a number >= 0, got {scale}",
                       "1 is the profile as tuned, 0 the base model, 0.6-0.8 softens it, above 1 exaggerates it")


def check_outputs(outputs: list[Path], fmt: str | None, keyframe_outputs, side_by_side) -> None:
    """Where ``vmc generate`` writes, checked before any work: a bad --format or suffix, a folder
    that cannot be written, two outputs that are one file."""
    from vmc_cli.io.video import check_output

    for out in outputs:
        check_output(Path(out), fmt, "-o")
    for option, paths in (("--keyframes-out", keyframe_outputs), ("--side-by-side", side_by_side)):
        for out in paths or []:
            check_output(Path(out), None, option)
    same_file_twice([("-o", outputs), ("--keyframes-out", keyframe_outputs), ("--side-by-side", side_by_side)])
