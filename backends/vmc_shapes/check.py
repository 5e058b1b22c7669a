"""Sample every caption of the shapes world from plain noise and measure what comes out.

    python -m vmc_shapes.check [--model-path FOLDER] [--seeds 4] [--steps 50] [--guidance 5]

For each of the 15 captions ("a <colour> <shape> is moving") and each seed: vmc's own
guided DDIM sampler from pure noise through the ``shapes`` backend, then the world's
measuring functions: colour and shape accuracy (``classify_appearance``), and whether the
shape moves (its centroid travels at least a tenth of the frame over the 8 frames).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def sample(backend, prompts: list[str], noise: torch.Tensor, *, steps: int, guidance: float,
           batch: int = 32) -> np.ndarray:
    """uint8 clips (N, F, H, W, 3): ``prompts[i]`` sampled from ``noise[i]``, in batches."""
    from vmc_cli.method.pipeline import MotionPipeline

    pipeline = MotionPipeline(backend)
    out = []
    for i in range(0, len(prompts), batch):
        x = pipeline.keyframes(noise[i:i + batch], prompts[i:i + batch], steps=steps, guidance=guidance)
        out.extend(backend.model_to_frames(clip[None]) for clip in x)
    return np.stack(out)


def travel(clip: np.ndarray) -> float:
    """Farthest the centroid gets from where it starts, in fractions of the frame."""
    from .world import centroid_path

    path = centroid_path(clip)
    return 0.0 if np.isnan(path).all() else float(np.nanmax(np.linalg.norm(path - path[0], axis=1)))


def measure(clips: np.ndarray, wanted: list[tuple[str, str]]) -> dict:
    """Colour, shape and both-right accuracy and the moving fraction for clips made for
    the given (shape, colour) pairs."""
    from .world import classify_appearance

    got = [classify_appearance(clip) for clip in clips]
    colour = np.mean([c == w[1] for (c, _), w in zip(got, wanted)])
    shape = np.mean([s == w[0] for (_, s), w in zip(got, wanted)])
    both = np.mean([(s, c) == w for (c, s), w in zip(got, wanted)])
    moving = np.mean([travel(clip) >= 0.1 for clip in clips])
    confusion: dict[str, dict[str, int]] = {}  # asked-for shape -> shape seen -> clips
    for (_, s), w in zip(got, wanted):
        row = confusion.setdefault(w[0], {})
        row[s] = row.get(s, 0) + 1
    return {"clips": len(clips), "colour_accuracy": float(colour), "shape_accuracy": float(shape),
            "both_accuracy": float(both), "moving": float(moving), "shape_confusion": confusion}


def grid_png(clips: np.ndarray, path: Path, scale: int = 2) -> None:
    """Each clip as a row of its frames."""
    from PIL import Image

    n, f, h, w, _ = clips.shape
    rows = clips.transpose(0, 2, 1, 3, 4).reshape(n * h, f * w, 3)
    Image.fromarray(rows).resize((f * w * scale, n * h * scale), Image.NEAREST).save(path)


def check(backend, *, seeds: int = 4, steps: int = 50, guidance: float = 5.0, grid: Path | None = None) -> dict:
    """Accuracy over every caption x ``seeds`` noise seeds (seed s: ``torch.manual_seed(s)``)."""
    from .world import COLOURS, SHAPES, caption

    from vmc_cli.jobs import noise_shape

    wanted = [(s, c) for s in SHAPES for c in COLOURS for _ in range(seeds)]
    shape = noise_shape(backend)[1:]  # (C, F, h, w) in the model's space: pixels here, latents on shapes-wan
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(i % seeds))
                         for i in range(len(wanted))])
    clips = sample(backend, [caption(*w) for w in wanted], noise, steps=steps, guidance=guidance)
    if grid:
        grid_png(clips, Path(grid))
    return {**measure(clips, wanted), "seeds": seeds, "steps": steps, "guidance": guidance}


def cli(make_backend, doc: str, steps: int) -> None:
    """The command line of a model check: ``make_backend(model_path or None, device)`` gives the
    loaded backend; ``steps`` is the default sampling steps."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--model-path", type=Path, default=None, help="a weights folder (default: the shipped one)")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--grid", type=Path, default=None, help="write the samples as a PNG grid here")
    args = ap.parse_args()
    backend = make_backend(args.model_path, args.device)
    print(json.dumps(check(backend, seeds=args.seeds, steps=args.steps, guidance=args.guidance, grid=args.grid)))


def main() -> None:
    from .backend import ShapesBackend

    def make(model_path, device):
        backend = ShapesBackend(model_path)
        backend.load(device=device)
        return backend

    cli(make, __doc__, steps=50)


if __name__ == "__main__":
    main()
