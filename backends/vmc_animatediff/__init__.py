"""AnimateDiff backend for vmc: the ``animatediff`` plugin (a MotionAdapter on any SD1.5 base).

Cheap to import (``vmc backends`` imports every plugin); the models load in
``vmc_animatediff.backend``.
"""

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption

#: the options it takes (``--adapter``, the same as ``--option adapter=...``), passed to
#: ``configure()`` and ``load()``
OPTIONS = (
    BackendOption("adapter", str, help="the MotionAdapter, a hub id or a folder (default "
                  "guoyww/animatediff-motion-adapter-v1-5-2, or $VMC_ANIMATEDIFF_ADAPTER; a profile keeps the one "
                  "it was tuned with)"),
)


def animatediff_backend():
    from .backend import AnimateDiffBackend

    return AnimateDiffBackend()


@hookimpl
def register_backends(register):
    register(
        "animatediff",
        animatediff_backend,
        description="AnimateDiff: a MotionAdapter (default guoyww/animatediff-motion-adapter-v1-5-2, --adapter) "
        "joined to a Stable Diffusion 1.5 base (default stable-diffusion-v1-5/stable-diffusion-v1-5, "
        "--model-path), both at pinned hub commits (VMC_ANIMATEDIFF_ADAPTER_REVISION, VMC_ANIMATEDIFF_BASE_REVISION "
        "override), as diffusers' UNetMotionModel, 16 frames at 512x512 over VAE latents; the motion "
        "modules' attention is tuned, so a profile moves to another SD1.5 base; needs the hub weights and a CUDA GPU",
        options=OPTIONS,
    )
