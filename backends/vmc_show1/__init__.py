"""Show-1 backend for vmc."""

# Keep this module cheap to import (it is the plugin entry point): the torch/diffusers
# model class is only imported on first attribute access.
__all__ = ["Show1UNet3DConditionModel"]


def __getattr__(name: str):
    if name == "Show1UNet3DConditionModel":
        from .unet import Show1UNet3DConditionModel

        return Show1UNet3DConditionModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
