"""Sample every caption of the shapes world from plain noise through ``shapes-wan`` and measure it.

    python -m vmc_shapes_wan.check [--model-path FOLDER] [--seeds 4] [--steps 25] [--guidance 5]

The shapes model's check (:func:`vmc_shapes.check.check`) on this backend: 15 captions x
``--seeds`` seeds, vmc's own sampler from fresh noise, then the world's measures (colour, shape,
and whether the shape moves a tenth of the frame or more over the 9 frames).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from vmc_shapes.check import check

    from .backend import ShapesWanBackend

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-path", type=Path, default=None, help="a model folder (default: the shipped one)")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--grid", type=Path, default=None, help="write the samples as a PNG grid here")
    args = ap.parse_args()
    backend = ShapesWanBackend()
    backend.name = "shapes-wan"
    backend.load(device="cpu", model_path=str(args.model_path) if args.model_path else None)
    print(json.dumps(check(backend, seeds=args.seeds, steps=args.steps, guidance=args.guidance, grid=args.grid)))


if __name__ == "__main__":
    main()
