"""How well the shipped shapes-wan VAE gives clips back: encode (posterior mean), decode, compare.

    python benchmarks/shapes_wan_vae.py [--clips 256] [--model-path FOLDER]

On fresh shapes-world clips (seed 123, not the training pool's seed 0), 9 frames at 32x32: the
mean absolute error over all pixels and over the shape's pixels (0-255), the centroid path error
of the reconstruction (fractions of the frame) and how often the world's classifier sees the same
colour and shape in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "backends")]


def main() -> None:
    from diffusers import AutoencoderKLWan

    from vmc_shapes.world import centroid_path, classify_appearance
    from vmc_shapes_wan.model import WEIGHTS
    from vmc_shapes_wan.train import make_pool, to_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--model-path", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    vae = AutoencoderKLWan.from_pretrained(args.model_path, subfolder="vae").eval()
    clips, _ = make_pool(args.clips, 123)
    out = []
    with torch.no_grad():
        for i in range(0, len(clips), 32):
            x = to_model(torch.from_numpy(clips[i:i + 32]))
            y = vae.decode(vae.encode(x).latent_dist.mode()).sample
            out.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 4, 1).numpy())
    rec = np.concatenate(out)
    diff = np.abs(rec.astype(int) - clips.astype(int))
    shape_pixels = clips.max(-1) > 60
    same = [classify_appearance(r) == classify_appearance(c) for r, c in zip(rec, clips)]
    path = [np.nanmean(np.linalg.norm(centroid_path(r) - centroid_path(c), axis=1)) for r, c in zip(rec, clips)]
    print(json.dumps({"clips": len(clips), "mean_abs_error": round(float(diff.mean()), 2),
                      "mean_abs_error_on_the_shape": round(float(diff[shape_pixels].mean()), 1),
                      "centroid_error": round(float(np.nanmean(path)), 4),
                      "colour_and_shape_kept": round(float(np.mean(same)), 3)}))


if __name__ == "__main__":
    main()
