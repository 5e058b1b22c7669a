"""CPU figures for the tiny backend.

    python benchmarks/cpu.py [--help-runs 7] [--steps 12] [--skip-demo] [--json]

Prints: the wall time of `vmc --help` (median; target < 0.5 s, so no torch
import on that path), tuning steps per second on the tiny backend at 8 frames
of 64x40 (median step time after one warm-up step), and the wall time of the
README demo (examples/demo.sh, in a temporary store and output folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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

    from vmc_cli.plugins import get_backend
    from vmc_cli.tuning import TuneConfig, tune

    backend = get_backend("tiny")
    backend.load()
    x = backend.frames_to_model(moving_disc(8, backend.width, backend.height))
    text = backend.encode_prompts(["a disc is moving"])
    stamps = [time.perf_counter()]
    tune(backend, x, text, TuneConfig(steps=steps + 1), on_step=lambda s, v: stamps.append(time.perf_counter()))
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    return per_step[1:], torch.get_num_threads()  # the first step warms up oneDNN


def time_demo() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VMC_HOME": str(Path(tmp) / "home"), "VMC_DEMO_OUT": str(Path(tmp) / "out")}
        t = time.perf_counter()
        subprocess.run(["bash", str(ROOT / "examples" / "demo.sh")], check=True, env=env, capture_output=True)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-runs", type=int, default=7)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--skip-demo", action="store_true")
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
    }
    if not args.skip_demo:
        result["demo_wall_s"] = round(time_demo(), 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"vmc --help             median {result['help_median_s']:.3f} s over {args.help_runs} runs (target < 0.5 s)")
    print(f"tiny tuning, 8x64x40   {result['tune_steps_per_s']:.2f} steps/s "
          f"(median step {result['tune_step_median_s']:.3f} s, {threads} threads)")
    if "demo_wall_s" in result:
        print(f"README demo            {result['demo_wall_s']:.1f} s wall")


if __name__ == "__main__":
    main()
