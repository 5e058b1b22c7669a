"""CPU figures: start-up, tuning speed on the tiny and shapes backends, the README demo.

    python benchmarks/cpu.py [--help-runs 7] [--steps 12] [--skip-demo] [--compile] [--json]

Prints: the wall time of `vmc --help` (median; target < 0.5 s, so no torch
import on that path), tuning steps per second on the tiny backend at 8 frames
of 64x40 and on the shapes backend (8 frames of 32x32, the loop the shapes
experiment runs hundreds of times) in several variants: before the
temporal-convolution rewrite (PyTorch's Conv3d, whose float32 CPU path is
``slow_conv3d``), as shipped, with bf16 autocast, channels-last weights, the classic
(batched matmul) attention processor in the temporal layers, and
(``--compile``) torch.compile; each a median step time after warm-up steps. Then
the wall time of the README demo (examples/demo.sh, in a temporary store and
output folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_help(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(["vmc", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def tuning_step_times(steps: int) -> tuple[list[float], int]:
    """Seconds per tuning step after the first (warm-up) one, and torch's thread count."""
    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    from make_clip import moving_disc

    from vmc_cli.models.plugins import get_backend
    from vmc_cli.method.tuning import TuneConfig, tune

    backend = get_backend("tiny")
    backend.load()
    x = backend.frames_to_model(moving_disc(8, backend.width, backend.height))
    text = backend.encode_prompts(["a disc is moving"])
    stamps = [time.perf_counter()]
    tune(backend, x, text, TuneConfig(steps=steps + 1), on_step=lambda s, v: stamps.append(time.perf_counter()))
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    return per_step[1:], torch.get_num_threads()  # the first step warms up oneDNN


def shapes_variant_step_times(steps: int, compile_too: bool) -> dict[str, float]:
    """Median seconds per shapes tuning step for each speed variant (same clip, prompt, seed)."""
    import contextlib

    import torch

    sys.path.insert(0, str(ROOT / "backends"))
    from vmc_cli.models.plugins import get_backend
    from vmc_cli.method.tuning import TuneConfig, tune
    from vmc_shapes.world import held_out_paths, render
    from vmc_pixel.blocks import FrameConv3d

    backend = get_backend("shapes")
    backend.load()
    x = backend.frames_to_model(render("circle", "green", held_out_paths()["zigzag"]))
    text = backend.encode_prompts(["a shape is moving"])
    base = {k: v.clone() for k, v in backend.unet.state_dict().items()}
    convs = [m for m in backend.unet.modules() if isinstance(m, FrameConv3d)]

    def median_step(autocast: bool = False) -> float:
        backend.unet.load_state_dict(base)
        stamps = [time.perf_counter()]
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            tune(backend, x, text, TuneConfig(steps=steps + 2, lr=1e-3),
                 on_step=lambda s, v: stamps.append(time.perf_counter()))
        return statistics.median([b - a for a, b in zip(stamps, stamps[1:])][2:])

    out = {}
    for m in convs:
        m.__class__ = torch.nn.Conv3d
    out["before: Conv3d temporal convs"] = median_step()
    for m in convs:
        m.__class__ = FrameConv3d
    out["as shipped"] = median_step()
    out["bf16 autocast"] = median_step(autocast=True)
    conv2d = [m for m in backend.unet.modules() if isinstance(m, torch.nn.Conv2d)]  # 4D weights only
    for m in conv2d:
        m.to(memory_format=torch.channels_last)
    out["channels-last weights"] = median_step()
    for m in conv2d:
        m.to(memory_format=torch.contiguous_format)
    # Temporal attention: 8 frames, head dim 8, thousands of tiny sequences; the classic
    # batched-matmul processor against the SDPA kernel.
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    procs = backend.unet.attn_processors
    temporal = {k: (AttnProcessor() if "temp_attentions" in k and isinstance(v, AttnProcessor2_0) else v)
                for k, v in procs.items()}
    backend.unet.set_attn_processor(temporal)
    out["classic attention in temporal layers"] = median_step()
    backend.unet.set_attn_processor(procs)
    if compile_too:
        eager = backend._unet
        backend._unet = torch.compile(eager)
        try:
            out["torch.compile"] = median_step()
        finally:
            backend._unet = eager
    return out


def time_demo() -> float:
    """The demo's wall time (``benchmarks/demo_time.py`` times each of its commands too)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from demo_time import run_once

    return run_once()["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-runs", type=int, default=7)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on the shapes backend")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    help_times = time_help(args.help_runs)
    step_times, threads = tuning_step_times(args.steps)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": threads,
        "help_median_s": round(statistics.median(help_times), 3),
        "tune_step_median_s": round(statistics.median(step_times), 3),
        "tune_steps_per_s": round(1 / statistics.median(step_times), 2),
        "shapes_tune_steps_per_s": {k: round(1 / v, 2)
                                    for k, v in shapes_variant_step_times(args.steps, args.compile).items()},
    }
    if not args.skip_demo:
        result["demo_wall_s"] = round(time_demo(), 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"vmc --help             median {result['help_median_s']:.3f} s over {args.help_runs} runs (target < 0.5 s)")
    print(f"tiny tuning, 8x64x40   {result['tune_steps_per_s']:.2f} steps/s "
          f"(median step {result['tune_step_median_s']:.3f} s, {threads} threads)")
    for variant, rate in result["shapes_tune_steps_per_s"].items():
        print(f"shapes tuning, 8x32x32 {rate:.2f} steps/s  {variant}")
    if "demo_wall_s" in result:
        print(f"README demo            {result['demo_wall_s']:.1f} s wall")


if __name__ == "__main__":
    main()
