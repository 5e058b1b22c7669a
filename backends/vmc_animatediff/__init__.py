"""AnimateDiff backend for vmc: the ``animatediff`` plugin (a MotionAdapter on any SD1.5 base).

Cheap to import (``vmc backends`` imports every plugin); the models load in
``vmc_animatediff.backend``.
"""

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption
from vmc_latent import revision_option, speed_options

#: its generation defaults where they depart from the method's (AnimateDiff's 50 steps, guidance 7.5)
DEFAULTS = {"invert_steps": 50, "sample_steps": 50, "guidance": 7.5}
#: its settings (``--option NAME=VALUE`` or the environment variable), passed to ``configure()``
OPTIONS = (
    BackendOption("model_path", env="VMC_ANIMATEDIFF_BASE",
                  help="the Stable Diffusion 1.5 base, a hub id (default stable-diffusion-v1-5/stable-diffusion-v1-5) "
                       "or a folder (an AnimateDiffPipeline folder brings its own adapter)"),
    revision_option("base_revision", "VMC_ANIMATEDIFF_BASE_REVISION", "the base"),
    BackendOption("adapter", env="VMC_ANIMATEDIFF_ADAPTER", kept=True,
                  help="the MotionAdapter, a hub id or a folder (default guoyww/animatediff-motion-adapter-v1-5-2); "
                       "a profile keeps the one it was tuned with"),
    revision_option("adapter_revision", "VMC_ANIMATEDIFF_ADAPTER_REVISION", "the adapter"),
    *speed_options("ANIMATEDIFF"),
)


def animatediff_backend():
    from .backend import AnimateDiffBackend

    return AnimateDiffBackend()


@hookimpl
def register_backends(register):
    register(
        "animatediff",
        animatediff_backend,
        description="AnimateDiff: a MotionAdapter (default guoyww/animatediff-motion-adapter-v1-5-2, --option adapter=...) "
        "joined to a Stable Diffusion 1.5 base (default stable-diffusion-v1-5/stable-diffusion-v1-5, "
        "--model-path), both at pinned hub commits (options adapter_revision, base_revision override), as diffusers' UNetMotionModel, 16 frames at 512x512 over VAE latents; the motion "
        "modules' attention is tuned, so a profile moves to another SD1.5 base; needs the hub weights and a CUDA GPU",
        options=OPTIONS,
        defaults=DEFAULTS,
    )
