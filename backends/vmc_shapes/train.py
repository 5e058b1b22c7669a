"""Train the ``shapes`` key-frame model from scratch on generated shapes-world clips.

    python -m vmc_shapes.train --steps 6000 --batch 64 --device cuda --out backends/vmc_shapes/weights/shapes.safetensors

Seeded and reproducible: a fixed pool of clips is generated up front from ``--seed``
(captions "a <colour> <shape> is moving"), then the UNet and text encoder are trained
with the plain epsilon-matching loss on the cosine schedule, 10% of captions dropped
(empty prompt) so that classifier-free guidance works. The recipe, the wall time and
the final loss are stored in the weights file's metadata.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch


def make_pool(n: int, seed: int):
    from .world import make_clip

    rng = np.random.default_rng(seed)
    clips = np.empty((n, 8, 32, 32, 3), np.uint8)
    captions = []
    for i in range(n):
        clip, caption, _ = make_clip(rng)
        clips[i] = clip
        captions.append(caption)
    return clips, captions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--clips", type=int, default=30000, help="size of the generated training pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="train for at most this long (the learning-rate schedule follows the time)")
    ap.add_argument("--init", type=Path, default=None, help="continue from these weights")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from diffusers import DDPMScheduler

    from . import model as shapes_model

    started = time.time()
    torch.manual_seed(args.seed)
    clips, captions = make_pool(args.clips, args.seed)
    pool_s = time.time() - started
    print(f"pool: {len(clips)} clips in {pool_s:.0f}s", flush=True)
    device = torch.device(args.device)
    if args.init:
        unet, text, tokenizer = shapes_model.load(args.init)
    else:
        unet, text, tokenizer = shapes_model.build(args.seed)
    unet.to(device).train()
    text.to(device).train()
    ids_all = tokenizer(captions)
    empty_ids = tokenizer([""])[0]
    data = torch.from_numpy(clips)  # (N, F, H, W, 3) uint8
    sched = DDPMScheduler.from_config(shapes_model.SCHEDULER)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    budget = 60 * args.max_minutes if args.max_minutes else None
    train_start = time.time()

    def progress(s: int) -> float:
        """Fraction of training done: by steps, or by time when --max-minutes is the tighter limit."""
        done = s / args.steps
        return max(done, (time.time() - train_start) / budget) if budget else done

    def lr_at(s: int) -> float:  # linear warm-up, then cosine decay to 0 over the run
        return args.lr * min(1.0, (s + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress(s))))
    gen = torch.Generator().manual_seed(args.seed)
    amp = device.type == "cuda"
    losses = []
    step = 0
    for step in range(args.steps):
        idx = torch.randint(len(data), (args.batch,), generator=gen)
        x0 = data[idx].to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (B, 3, F, H, W)
        ids = ids_all[idx].clone()
        drop = torch.rand(args.batch, generator=gen) < 0.1
        ids[drop] = empty_ids
        t = torch.randint(0, 1000, (args.batch,), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        x_t = sched.add_noise(x0, noise, t)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            emb = text(input_ids=ids.to(device)).last_hidden_state
            eps = unet(x_t, t, emb).sample
        loss = torch.nn.functional.mse_loss(eps.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 200 == 0 or step == args.steps - 1:
            print(f"step {step} loss {np.mean(losses[-200:]):.4f} {time.time() - started:.0f}s", flush=True)
        if budget and progress(step + 1) >= 1:
            break
    seconds = time.time() - started
    recipe = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    shapes_model.save(args.out, unet, text, {
        "recipe": recipe, "steps_done": step + 1, "seconds": round(seconds, 1),
        "final_loss_mean_last_200": round(float(np.mean(losses[-200:])), 5),
        "device": torch.cuda.get_device_name() if amp else "cpu", "torch": torch.__version__,
        "parameters": sum(p.numel() for p in params)})
    print(f"saved {args.out}: {step + 1} steps in {seconds:.0f}s, loss {np.mean(losses[-200:]):.4f}", flush=True)


if __name__ == "__main__":
    main()
