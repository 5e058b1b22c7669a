"""Which model carries the path: invert with one, sample with the other.

    python benchmarks/shapes_carrier.py [--cases 12] [--setting cos:400:1e-4] [--scales 0.5 1]
        [--strength 0.75] [--guidance 10] [--out runs/carrier.json]

On the judge's held-out cases (``shapes_cli_check.draw_cases``: twelve path families, each with
its own source and new look, rendered straight at the model's 32x32), tune the profile as
``vmc tune`` does (``--setting`` as ``shapes_tuning_check.py`` reads it, tuning prompt "a shape
is moving"), then make the key-frames of the new prompt four ways at each motion scale:
inverted with the base or the tuned (blended) model, and sampled with the base or the tuned
model. "base/base" is no adaptation, "tuned/tuned" is what ``vmc generate`` does. Prints the
mean centroid path error per way and its paired difference from no adaptation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "backends")]


def main() -> None:
    from shapes_cli_check import TIE, bootstrap, draw_cases, paths
    from shapes_transfer import parse_setting, path_error, sample_from

    from vmc_cli.method.pipeline import MotionPipeline
    from vmc_cli.method.tuning import TuneConfig, tune
    from vmc_shapes.backend import ShapesBackend
    from vmc_shapes.world import caption, centroid_path, classify_appearance, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--setting", default="cos:400:1e-4")
    ap.add_argument("--scales", nargs="+", type=float, default=[0.5, 1.0])
    ap.add_argument("--strength", type=float, default=0.75)
    ap.add_argument("--guidance", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--prompt", default="a shape is moving")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "carrier.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    backend = ShapesBackend()
    backend.load()
    base = {k: v.detach().clone() for k, v in backend.unet.state_dict().items()}
    tuning_text = backend.encode_prompts([args.prompt])
    families = paths()
    rows, started = [], time.time()

    def invert(x0):
        return MotionPipeline(backend).invert(x0, args.steps, args.strength)

    for case in draw_cases(args.cases, 0):
        colour, shape = case["source"]
        clip = render(shape, colour, families[case["path"]], (backend.width, backend.height), case["shape_size"])
        src = centroid_path(clip)
        x0 = backend.frames_to_model(clip)
        prompt = caption(case["new"][1], case["new"][0])
        backend.unet.load_state_dict(base)
        tuned = tune(backend, x0, tuning_text, TuneConfig(seed=0, **parse_setting(args.setting)))["weights"]
        backend.unet.load_state_dict(base)
        inv = {"base": invert(x0)}
        for scale in args.scales:
            backend.unet.load_state_dict(base)
            MotionPipeline(backend).apply_profile(tuned, scale)
            inv[scale] = invert(x0)
        for scale in args.scales:
            for inv_by, sample_by in [("base", "base"), ("tuned", "tuned"), ("base", "tuned"), ("tuned", "base")]:
                if (inv_by, sample_by) == ("base", "base") and scale != args.scales[0]:
                    continue
                backend.unet.load_state_dict(base)
                if sample_by == "tuned":
                    MotionPipeline(backend).apply_profile(tuned, scale)
                x_t = inv["base"] if inv_by == "base" else inv[scale]
                out = sample_from(backend, x0, prompt, steps=args.steps, guidance=args.guidance,
                                  strength=args.strength, inverted=x_t)[0]
                way = "base/base" if sample_by == inv_by == "base" else f"{inv_by}/{sample_by} x{scale:g}"
                got = classify_appearance(out)
                rows.append({"case": case["case"], "path": case["path"], "way": way,
                             "path_error": path_error(src, centroid_path(out)),
                             "appearance": tuple(got) == tuple(case["new"])})  # (colour, shape)
                print(json.dumps(rows[-1]), f"{time.time() - started:.0f}s", flush=True)
    backend.unet.load_state_dict(base)
    base_err = {r["case"]: r["path_error"] for r in rows if r["way"] == "base/base"}
    summary = {}
    for way in dict.fromkeys(r["way"] for r in rows):
        sel = [r for r in rows if r["way"] == way]
        d = np.array([r["path_error"] - base_err[r["case"]] for r in sel])
        summary[way] = {"mean_path_error": float(np.mean([r["path_error"] for r in sel])),
                        "appearance_right": float(np.mean([r["appearance"] for r in sel])),
                        "mean_difference": float(d.mean()), "difference_95ci": bootstrap(d),
                        "won": int((d < -TIE).sum()), "lost": int((d > TIE).sum())}
        print(f"{way:22s} {summary[way]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(["python", "benchmarks/shapes_carrier.py", *sys.argv[1:]]),
                                    "seconds": round(time.time() - started), "summary": summary, "rows": rows},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
