"""Show-1 backend for vmc: the ``show1`` plugin.

Registered through the ``vmc`` entry-point group like any third-party plugin.
Keep this module cheap to import (``vmc backends`` and ``vmc --help`` import
every plugin): the backend (``vmc_show1.backend``) and the torch/diffusers model
class are only imported when used.
"""

from vmc_cli import hookimpl

__all__ = ["Show1UNet3DConditionModel", "show1_backend"]


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
    )


def __getattr__(name: str):
    if name == "Show1UNet3DConditionModel":
        from vmc_pixel.unet import Show1UNet3DConditionModel

        return Show1UNet3DConditionModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
