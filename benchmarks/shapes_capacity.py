"""Capacity: does a profile alone hold its clip's path? Tuned on a held-out path with its own caption,
sampled from fresh noise with that caption, at ``--motion-scale 1`` against ``0`` from the same seeds.

    python benchmarks/shapes_capacity.py [--backend shapes-wan] [--seeds 3] [--tune ARGS] [--generate ARGS]
        [--out benchmarks/results/shapes_capacity_shapes-wan.json]

For each of the world's five held-out paths (circle, zig-zag, figure eight, bounce, stop-and-go;
``vmc_shapes.world.held_out_paths``, never drawn in training), with a fixed look per path: ``vmc
tune SOURCE -p CAPTION --keep-prompt --backend B [ARGS]``, then ``vmc generate P -p CAPTION
--init noise --seed S --stages keyframes`` at motion scale 1 and 0. Scored like the judge
(``examples/shapes_score.py``): centroid path error against the source in fractions of the frame
width. The commands run in this process (the CLI's ``main``), as a user types them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "backends"), str(ROOT / "examples")]

LOOKS = {"circle": ("circle", "red"), "zigzag": ("square", "green"), "figure_eight": ("triangle", "blue"),
         "bounce": ("circle", "yellow"), "stop_and_go": ("square", "white")}


def vmc(*args) -> None:
    from vmc_cli.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"vmc {shlex.join(map(str, args))} failed ({exc.code})") from None


def main() -> None:
    import os

    from shapes_score import score

    from vmc_cli.models.plugins import get_backend
    from vmc_cli.io.video import read_frames, write_video
    from vmc_shapes.world import caption, held_out_paths, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="shapes-wan")
    ap.add_argument("--seeds", type=int, default=3, help="generation seeds per path")
    ap.add_argument("--tune", default="", metavar="ARGS", help="extra `vmc tune` options")
    ap.add_argument("--generate", default="", metavar="ARGS", help="extra `vmc generate` options")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out_path = args.out or ROOT / "benchmarks" / "results" / f"shapes_capacity_{args.backend}.json"
    frames = get_backend(args.backend).num_frames
    rows = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["VMC_HOME"] = str(tmp / "home")
        for name, path in held_out_paths(frames).items():
            shape, colour = LOOKS[name]
            text = caption(shape, colour)
            clip = render(shape, colour, path, 32)
            source = write_video(clip, tmp / f"{name}.mp4", fps=4)
            t0 = time.time()
            vmc("tune", source, "-p", text, "--keep-prompt", "--backend", args.backend, "--name", name, "-q",
                *args.tune.split())
            tune_s = time.time() - t0
            for seed in range(args.seeds):
                errors = {}
                for scale in (1, 0):
                    out = tmp / f"{name}-{seed}-{scale}.mp4"
                    vmc("generate", name, "-p", text, "--init", "noise", "--seed", seed, "--motion-scale", scale,
                        "--stages", "keyframes", "-o", out, "-q", *args.generate.split())
                    s = score(clip, read_frames(out))
                    errors[scale] = s["path_error"]
                    right = (s["colour"], s["shape"]) == (colour, shape)
                    rows.append({"path": name, "seed": seed, "motion_scale": scale, "path_error": s["path_error"],
                                 "look_right": right})
                print(json.dumps({"path": name, "seed": seed, "tuned": errors[1], "untuned": errors[0],
                                  "tune_seconds": round(tune_s, 1)}), flush=True)
    tuned = np.array([r["path_error"] if r["path_error"] is not None else np.nan for r in rows if r["motion_scale"] == 1])
    base = np.array([r["path_error"] if r["path_error"] is not None else np.nan for r in rows if r["motion_scale"] == 0])
    summary = {"backend": args.backend, "command": shlex.join(["python", "benchmarks/shapes_capacity.py", *sys.argv[1:]]),
               "runs": int(len(tuned)), "tuned_mean": float(np.nanmean(tuned)), "untuned_mean": float(np.nanmean(base)),
               "ratio": float(np.nanmean(tuned) / np.nanmean(base)),
               "runs_won": int(np.sum(tuned < base - 0.005)), "runs_lost": int(np.sum(tuned > base + 0.005)),
               "look_right": float(np.mean([r["look_right"] for r in rows])),
               "seconds": round(time.time() - started, 1)}
    print(json.dumps(summary, indent=1))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
