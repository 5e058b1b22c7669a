"""How closely a generated shapes-world video follows the source clip's path, and what it shows.

    python examples/shapes_score.py SOURCE GENERATED [--json]

Both are read at any size and frame count (mp4, gif or a folder of PNGs). The generated
video is compared at the source's frame times (its 29 frames at the 8 key-frame times
0, 4, ..., 28). Prints the centroid path error (mean distance between the shape's centroid
in the two videos, in fractions of the frame width) and the colour and shape the
generated video shows (``vmc_shapes.world``'s measuring functions).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def score(source: np.ndarray, generated: np.ndarray) -> dict:
    from vmc_shapes.world import centroid_path, classify_appearance

    at = np.round(np.linspace(0, len(generated) - 1, len(source))).astype(int)
    generated = generated[at]
    a, b = centroid_path(source), centroid_path(generated)
    d = np.linalg.norm(a - b, axis=1)
    colour, shape = classify_appearance(generated)
    return {"path_error": float(np.nanmean(d)) if not np.isnan(d).all() else None,
            "frames_compared": int(np.sum(~np.isnan(d))), "colour": colour, "shape": shape,
            "source_colour_shape": list(classify_appearance(source))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("generated")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from vmc_cli.io.video import read_frames

    s = score(read_frames(args.source), read_frames(args.generated))
    if args.json:
        print(json.dumps(s))
    elif s["path_error"] is None:
        print("centroid path error: no shape found in the generated video")
    else:
        print(f"centroid path error {s['path_error']:.3f} of the frame width over {s['frames_compared']} frames; "
              f"the generated video shows a {s['colour']} {s['shape']} "
              f"(the source: a {s['source_colour_shape'][0]} {s['source_colour_shape'][1]})")


if __name__ == "__main__":
    main()
