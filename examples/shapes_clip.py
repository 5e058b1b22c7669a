"""Draw a shapes-world clip: one coloured shape moving along a path the shapes model never saw.

    python examples/shapes_clip.py out/source.mp4 [--path figure_eight] [--shape triangle] [--colour yellow]
        [--size 128] [--shape-size 0.28] [--frames 8]

Paths: circle, zigzag, figure_eight, bounce, stop_and_go (``vmc_shapes.world.held_out_paths``).
8 frames (``--frames 9`` for ``shapes-wan``), ``--size`` pixels square (``vmc tune`` resizes to
the model's 32x32), as mp4, gif or a folder of PNGs by the name's suffix.
"""

from __future__ import annotations

import argparse


def main() -> None:
    from vmc_shapes.world import COLOURS, SHAPE_SIZE, SHAPES, held_out_paths, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--path", choices=list(held_out_paths()), default="figure_eight")
    ap.add_argument("--shape", choices=SHAPES, default="triangle")
    ap.add_argument("--colour", choices=list(COLOURS), default="yellow")
    ap.add_argument("--size", type=int, default=128, help="frame width and height in pixels")
    ap.add_argument("--shape-size", type=float, default=SHAPE_SIZE, help="fraction of the frame height")
    ap.add_argument("--frames", type=int, default=8, help="frames in the clip (8 for shapes, 9 for shapes-wan)")
    args = ap.parse_args()
    paths = held_out_paths(args.frames)
    from vmc_cli.io.video import write_video

    frames = render(args.shape, args.colour, paths[args.path], args.size, args.shape_size)
    print(write_video(frames, args.output, fps=4))


if __name__ == "__main__":
    main()
