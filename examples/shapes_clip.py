"""Draw a shapes-world clip: one coloured shape moving along a path the shapes model never saw.

    python examples/shapes_clip.py out/source.gif [--path figure_eight] [--shape triangle] [--colour yellow]

Paths: circle, zigzag, figure_eight, bounce, stop_and_go (``vmc_shapes.world.held_out_paths``).
8 frames of 32x32, written as a GIF (lossless for these two-colour frames; an mp4 would
smear the colours of a 6-pixel shape).
"""

from __future__ import annotations

import argparse


def main() -> None:
    from vmc_shapes.world import COLOURS, SHAPES, held_out_paths, render

    paths = held_out_paths()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--path", choices=list(paths), default="figure_eight")
    ap.add_argument("--shape", choices=SHAPES, default="triangle")
    ap.add_argument("--colour", choices=list(COLOURS), default="yellow")
    args = ap.parse_args()
    from vmc_cli.video import write_video

    print(write_video(render(args.shape, args.colour, paths[args.path]), args.output, fps=4))


if __name__ == "__main__":
    main()
