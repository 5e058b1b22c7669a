"""Sample every caption of the shapes world from plain noise through ``shapes-wan`` and measure it.

    python -m vmc_shapes_wan.check [--model-path FOLDER] [--seeds 4] [--steps 25] [--guidance 5]

The shapes model's check (:func:`vmc_shapes.check.check`) on this backend: 15 captions x
``--seeds`` seeds, vmc's own sampler from fresh noise, then the world's measures (colour, shape,
and whether the shape moves a tenth of the frame or more over the 9 frames).
"""

from __future__ import annotations


def main() -> None:
    from vmc_shapes.check import cli

    from .backend import ShapesWanBackend

    def make(model_path, device):
        backend = ShapesWanBackend()
        backend.name = "shapes-wan"
        backend.load(device=device, model_path=str(model_path) if model_path else None)
        return backend

    cli(make, __doc__, steps=25)


if __name__ == "__main__":
    main()
