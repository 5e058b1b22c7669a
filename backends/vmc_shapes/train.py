"""Train the ``shapes`` key-frame model from scratch on generated shapes-world clips.

    python -m vmc_shapes.train --steps 6000 --batch 64 --device cuda --out backends/vmc_shapes/weights

Seeded and reproducible: a fixed pool of clips is generated up front from ``--seed``
(captions "a <colour> <shape> is moving"), then the UNet and text encoder are trained
with the v-prediction loss on the cosine schedule (the scheduler configuration in
``vmc_shapes.model``), 10% of captions dropped
(empty prompt) so that classifier-free guidance works. The recipe, the wall time and
the final loss are stored in the weights file's metadata.
"""

from __future__ import annotations

import argparse
import math
import sys
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


def training_target(sched, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the network learns to output for ``x0`` noised with ``noise`` at ``t``: the noise for
    an epsilon schedule, else v (``sched.get_velocity``); the backend's ``predict_noise`` undoes it."""
    return noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(x0, noise, t)


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
    ap.add_argument("--init", type=Path, default=None, help="continue from these weights (a folder)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ema", type=float, default=0.998, help="decay of the weight average that is saved")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast on the CPU too (always on CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    ap.add_argument("--save-every", type=float, default=10, metavar="MINUTES",
                    help="write the weights so far every this many minutes (0: only at the end)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (faster steps on a GPU)")
    ap.add_argument("--frame-positions", type=int, default=None, metavar="FRAMES",
                    help="give the temporal attention sinusoidal frame positions up to FRAMES behind a gain that "
                         "starts at zero (vmc_pixel.frame_positions); with --init, the rest of the weights are "
                         "those of --init")
    ap.add_argument("--gain-lr-scale", type=float, default=10.0, metavar="X",
                    help="the frame-position gains learn X times the network's rate, without weight decay "
                         "(default 10)")
    ap.add_argument("--check", type=int, default=0, metavar="SEEDS",
                    help="afterwards, sample every caption from noise with this many seeds and report accuracy")
    args = ap.parse_args()

    from diffusers import DDPMScheduler

    from . import model as shapes_model

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    torch.manual_seed(args.seed)
    clips, captions = make_pool(args.clips, args.seed)
    pool_s = time.time() - started
    print(f"pool: {len(clips)} clips in {pool_s:.0f}s", flush=True)
    device = torch.device(args.device)
    earlier = []  # the runs that made --init's weights, so training.json counts steps and hours in all
    if args.init:
        unet, text, tokenizer = shapes_model.load(args.init)
        record = shapes_model.training_record(args.init)
        earlier = record.get("runs") or [{k: record.get(k) for k in ("command", "steps_done", "seconds", "device")}]
    else:
        unet, text, tokenizer = shapes_model.build(args.seed)
    if args.frame_positions and not unet.config.get("temporal_frame_positions"):
        unet = shapes_model.with_frame_positions(unet, args.frame_positions)
    # Trained in eval mode: the models have no batch statistics, and the Show-1 UNet's
    # dropout only costs time (10% of a CPU step) on a run this short.
    unet.to(device).eval()
    text.to(device).eval()
    ids_all = tokenizer(captions).to(device)
    empty_ids = tokenizer([""])[0].to(device)
    data = torch.from_numpy(clips).to(device)  # (N, F, H, W, 3) uint8, resident on the device
    sched = DDPMScheduler.from_config(shapes_model.SCHEDULER)
    params = list(unet.parameters()) + list(text.parameters())
    # frame-position gains start at zero and would take thousands of steps at the network's rate:
    # they learn --gain-lr-scale times faster, without weight decay pulling them back to zero
    gains = [p for n, p in unet.named_parameters() if n.endswith("frame_position_gain")]
    rest = [p for p in params if all(p is not g for g in gains)]
    opt = torch.optim.AdamW([{"params": rest, "scale": 1.0},
                             *([{"params": gains, "scale": args.gain_lr_scale, "weight_decay": 0.0}] if gains else [])],
                            lr=args.lr, weight_decay=1e-2)
    budget = 60 * args.max_minutes if args.max_minutes else None
    train_start = time.time()

    def progress(s: int) -> float:
        """Fraction of training done: by steps, or by time when --max-minutes is the tighter limit."""
        done = s / args.steps
        return max(done, (time.time() - train_start) / budget) if budget else done

    def lr_at(s: int) -> float:  # linear warm-up, then cosine decay to 0 over the run
        return args.lr * min(1.0, (s + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress(s))))
    gen = torch.Generator(device).manual_seed(args.seed)
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    amp = device.type == "cuda" or args.bf16
    ema = [p.detach().clone() for p in params]

    def save(final: bool) -> None:
        """The EMA weights, with the recipe, time and loss so far, written atomically."""
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in params], ema)
        seconds = time.time() - started
        recipe = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        runs = [*earlier, {"command": "python -m vmc_shapes.train " + " ".join(sys.argv[1:]),
                           "steps_done": step + 1, "seconds": round(seconds, 1), "device": device_name}]
        shapes_model.save_pretrained(args.out, unet, text, {
            "recipe": recipe, "steps_done": step + 1, "seconds": round(seconds, 1), "finished": final,
            "runs": runs, "steps_in_all": sum(r["steps_done"] for r in runs),
            "hours_in_all": round(sum(r["seconds"] for r in runs) / 3600, 2),
            "final_loss_mean_last_200": round(float(np.mean(losses[-200:])), 5),
            "device": device_name,
            "torch": torch.__version__, "parameters": sum(p.numel() for p in params)})
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in params], live)
    last_save = time.time()
    net = torch.compile(unet) if args.compile else unet
    losses = []
    step = 0
    for step in range(args.steps):
        idx = torch.randint(len(data), (args.batch,), generator=gen, device=device)
        x0 = data[idx].permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # (B, 3, F, H, W)
        ids = ids_all[idx]
        drop = torch.rand(args.batch, generator=gen, device=device) < 0.1
        ids[drop] = empty_ids
        t = torch.randint(0, 1000, (args.batch,), generator=gen, device=device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        x_t = sched.add_noise(x0, noise, t)
        for group in opt.param_groups:
            group["lr"] = lr_at(step) * group["scale"]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            emb = text(input_ids=ids.to(device)).last_hidden_state
            pred = net(x_t, t, emb).sample
        target = training_target(sched, x0, noise, t)
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - min(args.ema, (step + 1) / (step + 10)))
        losses.append(loss.item())
        if args.save_every and time.time() - last_save > 60 * args.save_every:
            save(False)
            last_save = time.time()
        if step % 100 == 0 or step == args.steps - 1:
            shown = f" |gain| {float(torch.cat([g.detach().abs().flatten() for g in gains]).mean()):.3f}" if gains else ""
            print(f"step {step} loss {np.mean(losses[-200:]):.4f}{shown} {time.time() - started:.0f}s", flush=True)
        if budget and progress(step + 1) >= 1:
            break
    seconds = time.time() - started
    save(True)
    if args.check:
        from .backend import ShapesBackend
        from .check import check

        backend = ShapesBackend(args.out)
        backend.load(device=str(device))
        print(check(backend, seeds=args.check, grid=args.out / "check.png"))
    print(f"saved {args.out}: {step + 1} steps in {seconds:.0f}s, loss {np.mean(losses[-200:]):.4f}", flush=True)


if __name__ == "__main__":
    main()
