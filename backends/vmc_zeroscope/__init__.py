"""ZeroScope / ModelScope backend for vmc: the ``zeroscope`` plugin.

Cheap to import (``vmc backends`` imports every plugin); the models load in
``vmc_zeroscope.backend``.
"""

from vmc_cli import hookimpl


def zeroscope_backend():
    from .backend import ZeroScopeBackend

    return ZeroScopeBackend()


@hookimpl
def register_backends(register):
    register(
        "zeroscope",
        zeroscope_backend,
        description="ZeroScope/ModelScope (diffusers UNet3DConditionModel over VAE latents): "
        "cerspense/zeroscope_v2_576w, 24 frames at 576x320 (or damo-vilab/text-to-video-ms-1.7b, "
        "16 at 256x256, or --model-path FOLDER), at a pinned hub commit (VMC_ZEROSCOPE_REVISION overrides); "
        "temporal attention in temp_attentions; needs the hub "
        "weights and a CUDA GPU",
    )
