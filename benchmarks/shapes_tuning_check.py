"""Can the temporal attention learn one clip's motion? One source, several tuning settings.

    python benchmarks/shapes_tuning_check.py [--source zigzag] \\
        [--settings none cos:400:1e-4 x0cos:300:1e-3 noise:300:1e-3:0-999:qkv] [--strengths 1 0.8]

A setting is ``none`` (no tuning) or ``LOSS:STEPS:LR[:TLO-THI[:TARGET]]`` (a loss of
``vmc tune --loss``, tuning timesteps drawn from TLO..THI, ``--target``). For each setting on
one held-out source clip it prints the loss at the start and end of tuning (mean of the
first and last tenth of the steps), then the centroid path error (fractions of the frame)
and whether the new appearance came out right, for (a) the tuning prompt sampled from
fresh noise, (b) the tuning prompt from the clip's DDIM inversion ("recon") and (c) a new
appearance (another colour and shape) from the inversion at each ``--strengths`` value.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "backends")]


def main() -> None:
    from shapes_transfer import INVARIANT_PROMPT, SOURCES, parse_setting, path_error, sample_from, target_appearances

    from vmc_cli.method.tuning import TuneConfig, tune
    from vmc_shapes.backend import ShapesBackend
    from vmc_shapes.world import caption, centroid_path, classify_appearance, held_out_paths, render

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="zigzag", choices=list(SOURCES))
    ap.add_argument("--settings", nargs="+", default=["none", "cos:400:1e-4", "x0cos:300:1e-3"])
    ap.add_argument("--strengths", nargs="+", type=float, default=[1.0])
    ap.add_argument("--prompt", default=INVARIANT_PROMPT, help="tuning prompt")
    ap.add_argument("--steps", type=int, default=25, help="inversion and sampling steps")
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-path", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    backend = ShapesBackend(args.model_path)
    backend.load()
    base = {k: v.detach().clone() for k, v in backend.unet.state_dict().items()}
    look = SOURCES[args.source]
    clip = render(*look, held_out_paths()[args.source])
    src_path = centroid_path(clip)
    x0 = backend.frames_to_model(clip)
    new_look = target_appearances(*look, 1)[0]
    new = caption(*new_look)
    print(f"source {args.source} ({look[1]} {look[0]}), tuning prompt {args.prompt!r}, new prompt {new!r}")
    head = " ".join(f"{'new@' + format(s, 'g'):>9}" for s in args.strengths)
    print(f"{'setting':>28} {'loss':>13} {'fresh':>6} {'recon':>6} {head}   (path error; * = appearance wrong) s")
    for setting in args.settings:
        backend.unet.load_state_dict(base)
        started = time.time()
        loss = "-"
        kwargs = parse_setting(setting)
        if kwargs:
            losses = tune(backend, x0, backend.encode_prompts([args.prompt]),
                          TuneConfig(seed=args.seed, **kwargs))["losses"]
            k = max(1, len(losses) // 10)
            loss = f"{np.mean(losses[:k]):.3f}>{np.mean(losses[-k:]):.3f}"
        cells = []
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1000 + args.seed))
        for prompt, strength, init in [(args.prompt, 1.0, noise), (args.prompt, 1.0, None),
                                       *[(new, s, None) for s in args.strengths]]:
            frames = sample_from(backend, x0, prompt, steps=args.steps, guidance=args.guidance,
                                 strength=strength, noise=init)[0]
            err = path_error(src_path, centroid_path(frames))
            colour, shape = classify_appearance(frames)
            wrong = prompt == new and (shape, colour) != new_look
            cells.append(f"{err:.3f}{'*' if wrong else ' '}")
        print(f"{setting:>28} {loss:>13} {cells[0]:>6} {cells[1]:>6} "
              + " ".join(f"{c:>9}" for c in cells[2:]) + f"   {time.time() - started:.0f}", flush=True)
    backend.unet.load_state_dict(base)


if __name__ == "__main__":
    main()
