"""The shapes backend's defaults through the real CLI, on clips unlike the experiment's.

    python benchmarks/shapes_cli_check.py [--cases 6] [--out benchmarks/results/shapes_cli_check.json]

Each case draws a path family the experiment does not use (a diagonal line, a spiral, a
square loop, a sine wave, a V, a hook), a shape size, a frame size (64 or 128 pixels,
square or not) and a source look, writes the source as an mp4, then runs what a user
runs, with the backend's defaults: ``vmc tune SOURCE.mp4 -p "a shape is moving"
--backend shapes`` and ``vmc generate PROFILE -p "a <new colour> <new shape> is moving"
-o OUT.mp4`` (and, per ``--also ARGS``, once more with those options). The final mp4
(29 frames, 48x48) is read back and scored at the 8 key-frame times: centroid path error
against the source (fractions of the frame width) and whether it shows the new colour and
shape. Prints one line per case and the means.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "backends"), str(ROOT / "examples")]


def paths(frames: int = 8) -> dict[str, np.ndarray]:
    u = np.linspace(0, 1, frames)
    theta = 2 * np.pi * u
    corners = np.array([[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7], [0.3, 0.3]])
    square = np.stack([np.interp(u * 4, np.arange(5), corners[:, k]) for k in range(2)], 1)
    return {
        "diagonal": np.stack([0.25 + 0.5 * u, 0.72 - 0.45 * u], 1),
        "spiral": np.stack([0.5 + (0.08 + 0.2 * u) * np.cos(1.5 * theta), 0.5 + (0.08 + 0.2 * u) * np.sin(1.5 * theta)], 1),
        "square_loop": square,
        "sine": np.stack([0.22 + 0.56 * u, 0.5 + 0.2 * np.sin(2 * theta)], 1),
        "v_shape": np.stack([0.22 + 0.56 * u, 0.3 + 0.4 * (1 - np.abs(2 * u - 1))], 1),
        "hook": np.stack([0.3 + 0.4 * np.minimum(u * 1.6, 1), 0.3 + 0.4 * np.maximum(0, u * 1.6 - 0.6) * 1.0], 1),
    }


def main() -> None:
    from shapes_score import score

    from vmc_cli.video import read_frames, write_video
    from vmc_shapes.world import COLOURS, SHAPES, caption, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shapes_cli_check.json")
    ap.add_argument("--also", action="append", default=[], metavar="ARGS",
                    help="generate once more per case with these extra options (repeatable), "
                         "e.g. --also '--guidance 5 --strength 0.7 --motion-scale 1'")
    args = ap.parse_args()
    settings = ["", *args.also]
    rng = np.random.default_rng(args.seed)
    families = paths()
    rows = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "VMC_HOME": str(tmp / "home")}
        for i in range(args.cases):
            family = list(families)[i % len(families)]
            shape, colour = SHAPES[rng.integers(3)], list(COLOURS)[rng.integers(5)]
            new_shape = [s for s in SHAPES if s != shape][rng.integers(2)]
            new_colour = [c for c in COLOURS if c != colour][rng.integers(4)]
            size = [(128, 128), (64, 64), (128, 96)][i % 3]
            shape_size = float(rng.uniform(0.22, 0.34))
            source = write_video(render(shape, colour, families[family], size, shape_size), tmp / f"src{i}.mp4", fps=4)
            t0 = time.time()
            tune = subprocess.run(["vmc", "tune", source, "-p", "a shape is moving", "--backend", "shapes",
                                   "--name", f"case{i}", "-q"], env=env, capture_output=True, text=True)
            assert tune.returncode == 0, tune.stderr
            prompt = caption(new_shape, new_colour)
            for k, extra in enumerate(settings):
                out = tmp / f"out{i}-{k}.mp4"
                gen = subprocess.run(["vmc", "generate", f"case{i}", "-p", prompt, "-o", out, "-q", *extra.split()],
                                     env=env, capture_output=True, text=True)
                assert gen.returncode == 0, gen.stderr
                s = score(read_frames(source), read_frames(out))
                row = {"case": i, "generate": extra or "defaults", "path": family, "size": list(size),
                       "shape_size": round(shape_size, 3), "source": [colour, shape], "prompt": prompt,
                       "path_error": s["path_error"], "appearance": (s["colour"], s["shape"]) == (new_colour, new_shape),
                       "got": [s["colour"], s["shape"]], "seconds": round(time.time() - t0, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {"cases": args.cases, "seconds": round(time.time() - started, 1),
               "command": shlex.join(["python", "benchmarks/shapes_cli_check.py", *sys.argv[1:]]), "by_setting": {}}
    for extra in settings:
        sel = [r for r in rows if r["generate"] == (extra or "defaults")]
        errors = [r["path_error"] for r in sel if r["path_error"] is not None]
        summary["by_setting"][extra or "defaults"] = {
            "mean_path_error": float(np.mean(errors)) if errors else None,
            "appearance_right": float(np.mean([r["appearance"] for r in sel]))}
    print(json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
