"""Show-1 backend for vmc: the ``show1`` plugin.

Registered through the ``vmc`` entry-point group like any third-party plugin.
Keep this module cheap to import (``vmc backends`` and ``vmc --help`` import
every plugin): the backend (``vmc_show1.backend``) and the torch/diffusers model
class are only imported when used.
"""

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption

__all__ = ["OPTIONS", "Show1UNet3DConditionModel", "show1_backend"]

_RUNS = ("tune", "invert", "generate")
#: its settings (``--option NAME=VALUE`` or the environment variable), passed to ``configure()``;
#: what each does: :mod:`vmc_show1.backend`
OPTIONS = (
    BackendOption("model_path", env="VMC_SHOW1_PATH",
                  help="a local root holding show-1-base/, show-1-interpolation/, show-1-sr1/, show-1-sr2/ and "
                       "IF-II-L-v1.0/ in the hub's layout (default: the hub)"),
    BackendOption("revisions", env="VMC_SHOW1_REVISIONS",
                  help="pinned hub revisions per model, e.g. keyframes=<commit>,sr2=main (roles: keyframes, "
                       "interpolation, sr1_first_frame, sr1, sr2; default main)"),
    BackendOption("inversion", default="authors", choices=("authors", "model"), env="VMC_SHOW1_INVERSION",
                  commands=_RUNS,
                  help="the noise schedule of DDIM inversion: the authors' (Stable Diffusion 1.5's) or the model's"),
    BackendOption("keyframe_size", default="64x40", env="VMC_SHOW1_KEYFRAME_SIZE", commands=_RUNS, kept=True,
                  help="WIDTHxHEIGHT of the key-frames; sr1 makes 4x that, sr2 576x320 scaled the same"),
    BackendOption("stage_steps", env="VMC_SHOW1_STEPS", commands=("generate",),
                  help="steps of the later stages, e.g. interpolation=75,sr1_first_frame=70,sr1=125,sr2=50 "
                       "(the defaults)"),
    BackendOption("offload", default="auto", choices=("auto", "1", "0"), env="VMC_SHOW1_OFFLOAD", commands=_RUNS,
                  help="keep the stages not running in CPU memory (auto: on CUDA devices under 40 GiB)"),
    BackendOption("gradient_checkpointing", bool, default=False, env="VMC_SHOW1_GRADIENT_CHECKPOINTING",
                  commands=("tune",), help="recompute the key-frame UNet's activations in the backward pass "
                                           "(less memory, slower tuning)"),
)


def show1_backend():
    from .backend import Show1Backend

    return Show1Backend()


@hookimpl
def register_backends(register):
    register(
        "show1",
        show1_backend,
        description="Show-1 (showlab): pixel key-frames 8x64x40 -> interpolation 29 frames -> "
        "super-resolution 256x160 -> 576x320; needs the hub weights (or --model-path) and a CUDA GPU",
        options=OPTIONS,
    )


def __getattr__(name: str):
    if name == "Show1UNet3DConditionModel":
        from vmc_pixel.unet import Show1UNet3DConditionModel

        return Show1UNet3DConditionModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
