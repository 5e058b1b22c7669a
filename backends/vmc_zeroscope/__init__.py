"""ZeroScope / ModelScope backend for vmc: the ``zeroscope`` plugin.

Cheap to import (``vmc backends`` imports every plugin); the models load in
``vmc_zeroscope.backend``.
"""

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption
from vmc_latent import revision_option, speed_options

#: its generation defaults where they depart from the method's (diffusers' 50 steps for these UNets)
DEFAULTS = {"invert_steps": 50, "sample_steps": 50}
#: its settings (``--option NAME=VALUE`` or the environment variable), passed to ``configure()``
OPTIONS = (
    BackendOption("model_path", env="VMC_ZEROSCOPE_MODEL",
                  help="a hub id (cerspense/zeroscope_v2_576w by default, or damo-vilab/text-to-video-ms-1.7b) or a "
                       "folder TextToVideoSDPipeline.save_pretrained wrote"),
    revision_option("revision", "VMC_ZEROSCOPE_REVISION"),
    BackendOption("xl_path", env="VMC_ZEROSCOPE_XL_PATH", commands=("generate",),
                  help="a local ZeroScope XL folder for --stages all,xl (default: cerspense/zeroscope_v2_XL)"),
    revision_option("xl_revision", "VMC_ZEROSCOPE_XL_REVISION", "ZeroScope XL", commands=("generate",)),
    BackendOption("xl_size", env="VMC_ZEROSCOPE_XL_SIZE", commands=("generate",),
                  help="WIDTHxHEIGHT of the XL upscale (default 1024x576; twice the key-frames for a local XL folder)"),
    *speed_options("ZEROSCOPE"),
)


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
        options=OPTIONS,
        defaults=DEFAULTS,
    )
