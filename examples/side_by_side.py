"""Put a source clip and a generated video side by side in one GIF (nearest-neighbour enlarged).

    python examples/side_by_side.py SOURCE GENERATED OUT.gif [--height 128]

The two may have different frame counts (8 source frames, 29 generated ones): each output
frame shows the source frame at the same point in time.
"""

from __future__ import annotations

import argparse

import numpy as np


def side_by_side(source: np.ndarray, generated: np.ndarray, height: int = 128, gap: int = 4) -> np.ndarray:
    """(frames, height, w1 + gap + w2, 3) uint8 with as many frames as the longer input."""
    import cv2

    n = max(len(source), len(generated))

    def at(video, i):  # the frame at the same relative time
        return video[round(i * (len(video) - 1) / max(n - 1, 1))]

    def enlarge(frame):
        w = round(frame.shape[1] * height / frame.shape[0])
        return cv2.resize(np.ascontiguousarray(frame), (w, height), interpolation=cv2.INTER_NEAREST)

    out = []
    for i in range(n):
        a, b = enlarge(at(source, i)), enlarge(at(generated, i))
        out.append(np.concatenate([a, np.full((height, gap, 3), 128, np.uint8), b], axis=1))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("generated")
    ap.add_argument("output")
    ap.add_argument("--height", type=int, default=128)
    args = ap.parse_args()
    from vmc_cli.video import read_frames, write_video

    print(write_video(side_by_side(read_frames(args.source), read_frames(args.generated), args.height),
                      args.output, fps=8))


if __name__ == "__main__":
    main()
