"""The ``shapes-wan`` backend: Wan 2.1's architecture trained on the shapes world (issue #31).

The ``wan`` backend (:mod:`vmc_wan`) with a small model trained here on the clips of
:mod:`vmc_shapes.world` as its default: ``WanTransformer3DModel`` over ``AutoencoderKLWan`` latents
with a small UMT5 text encoder, shipped in ``weights/`` (``WanPipeline.save_pretrained``'s
layout), 9 frames at 32x32, CPU, no download. Unlike ``shapes`` (Show-1's layout, whose temporal
attention cannot tell one frame from another), its self-attention sees frame order (3D rotary
positions), so a profile's LoRA on it can hold a path by itself.

- :mod:`vmc_shapes_wan.model`: the configs and why 9 frames at 32x32;
- :mod:`vmc_shapes_wan.train`: the training command (resumable);
- :mod:`vmc_shapes_wan.backend`: the backend.

It extends two registered backends by design (the wan backend's class, the shapes world's clips
and measures); ``tests/test_imports.py`` names this as the one allowed cross-import. This module
stays free of heavy imports.
"""

import dataclasses

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption
from vmc_latent import speed_options
from vmc_wan import LORA_RANK

#: Tuning defaults chosen on the capacity test and the judge (docs/shapes_wan.md): the paper's
#: noise-residual cosine (the wan defaults, 400 x 1e-4 on q/k) leaves the path where it was from
#: fresh noise (1.02x untuned), as do 1e-3 and plain noise matching; the cosine on the denoised
#: motion vectors (``x0cos``) on q, k and v carries it, best at rank 32, 600 steps of 1e-3 (0.36x,
#: 15 of 15 runs better). The paper's stays selectable: ``--loss cos --target qk --steps 400 --lr 1e-4``.
TUNE_DEFAULTS = {"loss": "x0cos", "target": "qkv", "steps": 600, "lr": 1e-3}
#: the wan backend's options but its model's (a local folder only, its key-frames fixed), with the
#: its generation defaults where they depart from the method's: 25 steps (flow inversion measured in
#: docs/shapes_wan.md) and Wan's guidance 5
DEFAULTS = {"invert_steps": 25, "sample_steps": 25, "guidance": 5.0}
#: LoRA rank those measurements chose
OPTIONS = (
    BackendOption("model_path", env="VMC_SHAPES_WAN_PATH",
                  help="a shapes-wan model folder (default: the shipped weights)"),
    dataclasses.replace(LORA_RANK, default=32),
    *speed_options("SHAPES_WAN"),
)


def shapes_wan_backend():
    from .backend import ShapesWanBackend

    return ShapesWanBackend()


@hookimpl
def register_backends(register):
    register(
        "shapes-wan",
        shapes_wan_backend,
        description="Small Wan 2.1 model (WanTransformer3DModel, flow matching, LoRA on the self-attention) trained "
        "on the shapes world: 9 frames at 32x32; shipped weights, no download, CPU",
        tune_defaults=TUNE_DEFAULTS,
        options=OPTIONS,
        defaults=DEFAULTS,
    )
