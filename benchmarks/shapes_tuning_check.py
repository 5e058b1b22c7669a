"""Why does (or doesn't) tuning help on the shapes world? One source, several tuning budgets.

    python benchmarks/shapes_tuning_check.py [--source zigzag] [--settings 0:0 60:1e-3 400:1e-4]

For each ``steps:lr`` setting (``0:0`` = no tuning) on one held-out source clip: the
motion-distillation loss at the start and end of tuning (mean of the first and last
tenth of the steps), then, from the clip's DDIM inversion with the tuned model, the
centroid path error and motion fidelity of (a) the reconstruction (sampled with the
tuning prompt) and (b) a new appearance (another colour and shape). Prints one row per
setting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "backends")]


def main() -> None:
    from shapes_transfer import INVARIANT_PROMPT, SOURCES, path_error, target_appearances

    from vmc_cli.inversion import ddim_invert
    from vmc_cli.metrics import motion_fidelity
    from vmc_cli.sampling import ddim_sample, guided
    from vmc_cli.tuning import TuneConfig, tune
    from vmc_shapes.backend import ShapesBackend
    from vmc_shapes.world import caption, centroid_path, held_out_paths, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="zigzag", choices=list(SOURCES))
    ap.add_argument("--settings", nargs="+", default=["0:0", "60:1e-3", "400:1e-4"])
    ap.add_argument("--prompt", default=INVARIANT_PROMPT, help="tuning prompt")
    ap.add_argument("--steps", type=int, default=25, help="inversion and sampling steps")
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    backend = ShapesBackend()
    backend.load()
    base = {k: v.detach().clone() for k, v in backend.unet.state_dict().items()}
    look = SOURCES[args.source]
    clip = render(*look, held_out_paths()[args.source])
    src_path = centroid_path(clip)
    x0 = backend.frames_to_model(clip)
    new = caption(*target_appearances(*look, 1)[0])
    empty = backend.encode_prompts([""])
    print(f"source {args.source} ({look[1]} {look[0]}), tuning prompt {args.prompt!r}, new prompt {new!r}")
    print(f"{'steps:lr':>10} {'loss start':>10} {'loss end':>9} {'recon path':>10} {'recon mf':>9} "
          f"{'new path':>9} {'new mf':>7}")
    for setting in args.settings:
        steps, lr = setting.split(":")
        backend.unet.load_state_dict(base)
        start = end = float("nan")
        if int(steps):
            losses = tune(backend, x0, backend.encode_prompts([args.prompt]),
                          TuneConfig(steps=int(steps), lr=float(lr), seed=args.seed))["losses"]
            k = max(1, len(losses) // 10)
            start, end = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
            backend.unet.eval()
        with torch.no_grad():
            x_t = ddim_invert(lambda x, t: backend.predict_noise(x, t, empty.expand(x.shape[0], -1, -1)),
                              backend.inversion_scheduler(), x0, args.steps)
            row = []
            for prompt in (args.prompt, new):
                text, uncond = backend.encode_prompts([prompt, ""]).chunk(2)
                out = ddim_sample(guided(backend.predict_noise, text, uncond, args.guidance),
                                  backend.sampling_scheduler(), x_t, args.steps)
                frames = backend.model_to_frames(out)
                mf = motion_fidelity(clip, frames)["motion_fidelity"]
                row += [path_error(src_path, centroid_path(frames)), float("nan") if mf is None else mf]
        print(f"{setting:>10} {start:>10.3f} {end:>9.3f} {row[0]:>10.3f} {row[1]:>+9.3f} {row[2]:>9.3f} "
              f"{row[3]:>+7.3f}", flush=True)
    backend.unet.load_state_dict(base)


if __name__ == "__main__":
    main()
