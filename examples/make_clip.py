"""Make a small synthetic clip: a coloured disc moving along a curve on a dark background.

    python examples/make_clip.py examples/data/disc.mp4 [--frames 16] [--size 128x80] [--seed 0]

No download: the clip is drawn with numpy and written with vmc's own video writer.
"""

from __future__ import annotations

import argparse

import numpy as np


def moving_disc(frames: int = 16, width: int = 128, height: int = 80, seed: int = 0) -> np.ndarray:
    """(frames, height, width, 3) uint8: a disc moving along a random smooth arc."""
    rng = np.random.default_rng(seed)
    colour = np.array([255, 80, 40]) if seed == 0 else rng.integers(64, 256, 3)
    r = height / 10
    p0 = np.array([width * 0.2, height * 0.7])
    p1 = np.array([width * 0.5, height * (0.1 + 0.2 * rng.random())])
    p2 = np.array([width * 0.8, height * 0.7])
    yy, xx = np.mgrid[0:height, 0:width]
    out = np.zeros((frames, height, width, 3), np.uint8)
    out[..., :] = (20, 24, 32)
    for i in range(frames):
        s = i / max(frames - 1, 1)
        cx, cy = (1 - s) ** 2 * p0 + 2 * (1 - s) * s * p1 + s**2 * p2  # quadratic Bezier
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        out[i][inside] = colour
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", default="128x80", help="WIDTHxHEIGHT")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    from vmc_cli.io.video import write_video

    print(write_video(moving_disc(args.frames, w, h, args.seed), args.output, fps=8))


if __name__ == "__main__":
    main()
