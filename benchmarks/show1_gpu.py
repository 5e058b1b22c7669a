"""Show-1 key-frame stage on a GPU: tuning, inversion and sampling at full size, random weights.

    python benchmarks/show1_gpu.py [--size full|reduced] [--steps 6] [--sample-steps 10] [--dtype float16]

Builds the key-frame UNet from the real configuration
(../shared/reference/show1/base.unet.config.json, or $VMC_SHOW1_REFERENCE) with random weights, so no
download is needed, puts it into the ``show1`` backend and runs vmc's own
tuning loop, DDIM inversion and guided DDIM sampling through it. Prints a
table and writes JSON to benchmarks/results/<device>.json. Times are medians
of per-step times after a warm-up step (CUDA synchronised); peak memory is
``torch.cuda.max_memory_allocated`` reset before each part. ``--size reduced``
shrinks the widths so the script can be checked on a CPU.

Not yet measured here (see CHANGELOG): interpolation, both super-resolution
stages and the whole cascade.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("VMC_SHOW1_REFERENCE", ROOT.parent / "shared" / "reference" / "show1"))


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_reset():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def matmul_tflops(dtype=torch.bfloat16, n=8192, reps=20) -> float | None:
    """The device's measured dense matrix rate (TFLOP/s) for ``dtype``."""
    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return round(2 * n**3 * reps / (time.perf_counter() - t) / 1e12, 1)


def build_backend(size: str, device: str, dtype: str):
    from vmc_show1.backend import Show1Backend
    from vmc_show1.unet import Show1UNet3DConditionModel

    config = json.loads((REFERENCE / "base.unet.config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if size == "reduced":
        config.update(block_out_channels=[64, 64, 64, 64], layers_per_block=1, attention_head_dim=8,
                      encoder_hid_dim=128, cross_attention_dim=64, norm_num_groups=32)
    pipeline = json.loads((REFERENCE / "pipeline_files.json").read_text())
    scheduler = pipeline["show-1-base"]["scheduler/scheduler_config.json"]["content"]
    backend = Show1Backend()
    backend.name = "show1"
    backend._set_device(device, dtype)
    torch.manual_seed(0)
    with torch.device(device):
        unet = Show1UNet3DConditionModel.from_config(config)
    unet = unet.to(backend.dtype).eval().requires_grad_(False)
    if backend.dtype != torch.float32:  # as the backend does: fp32 master weights for what tuning trains
        for name, module in unet.named_modules():
            if name.rsplit(".", 1)[-1] == backend.temporal_attention_marker:
                module.to(torch.float32)
    backend._unet = unet
    backend._scheduler_config = {k: v for k, v in scheduler.items() if not k.startswith("_")}
    return backend, config


def timed_steps(run, n):
    """Run ``run(callback)``; callback marks each step; returns per-step seconds after the first."""
    stamps = []

    def mark(*_):
        sync()
        stamps.append(time.perf_counter())

    sync()
    stamps.append(time.perf_counter())
    run(mark)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return steps[1:] if len(steps) > 1 else steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "reduced"), default="full")
    ap.add_argument("--steps", type=int, default=6, help="tuning steps to time (first one is warm-up)")
    ap.add_argument("--sample-steps", type=int, default=10)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--compile", default=None, metavar="MODE",
                    help="torch.compile the key-frame UNet (default, reduce-overhead, max-autotune...)")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    args = ap.parse_args()

    from vmc_cli.inversion import ddim_invert
    from vmc_cli.progress import Reporter
    from vmc_cli.sampling import ddim_sample, guided
    from vmc_cli.tuning import TuneConfig, tune

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    backend, config = build_backend(args.size, device, args.dtype)
    params = sum(p.numel() for p in backend.unet.parameters())
    frames, h, w = 8, 40, 64
    g = torch.Generator("cpu").manual_seed(0)
    clip = (torch.rand(1, 3, frames, h, w, generator=g) * 2 - 1).to(device)
    text = torch.randn(2, 77, config["encoder_hid_dim"], generator=g).to(device, backend.dtype)
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    with FlopCounterMode(display=False) as counter:  # on the eager model (compiled kernels are not counted)
        tune(backend, clip, text[:1], TuneConfig(steps=1))
    flops["tune_step"] = counter.get_total_flops()
    if args.gradient_checkpointing:
        backend.unet.enable_gradient_checkpointing()
    if args.compile:
        backend._unet = torch.compile(backend._unet, mode=None if args.compile == "default" else args.compile)
    result = {"device": name, "size": args.size, "dtype": str(backend.dtype).replace("torch.", ""),
              "compile": args.compile, "gradient_checkpointing": args.gradient_checkpointing,
              "keyframe_unet_parameters": params, "torch": torch.__version__}

    class Marker(Reporter):
        """Progress that calls ``mark`` after every step of a tracked loop."""

        def __init__(self, mark):
            super().__init__(enabled=False)
            self.mark = mark

        def track(self, iterable, description, total=None):
            for item in iterable:
                yield item
                self.mark()

    # -- tuning ---------------------------------------------------------------------------
    peak_reset()

    def run_tune(mark):
        result["tune_losses"] = tune(backend, clip, text[:1], TuneConfig(steps=args.steps), on_step=mark)["losses"]

    tune_steps = timed_steps(run_tune, args.steps)
    result["tune_peak_gib"] = peak_gib()
    result["tune_s_per_step"] = round(statistics.median(tune_steps), 4)
    result["tune_400_steps_s"] = round(400 * result["tune_s_per_step"], 1)
    result["tune_step_tflop"] = round(flops["tune_step"] / 1e12, 3)
    result["tune_tflops"] = round(flops["tune_step"] / result["tune_s_per_step"] / 1e12, 1)
    result["bf16_matmul_tflops"] = matmul_tflops()
    result["tune_losses_finite"] = all(v == v and abs(v) != float("inf") for v in result.pop("tune_losses"))

    # -- inversion and sampling -----------------------------------------------------------
    empty, prompt = text[1:], text[:1]
    for part, steps_n in (("inversion", args.sample_steps), ("keyframes", args.sample_steps)):
        peak_reset()
        holder = {}

        def run(mark, part=part, steps_n=steps_n):
            if part == "inversion":
                holder["x"] = ddim_invert(lambda x, t: backend.predict_noise(x, t, empty.expand(x.shape[0], -1, -1)),
                                          backend.inversion_scheduler(), clip.to(backend.dtype), steps_n, Marker(mark))
            else:
                predict = guided(backend.predict_noise, prompt, empty, 9.0)
                holder["x"] = ddim_sample(predict, backend.sampling_scheduler(), torch.randn_like(clip), steps_n,
                                          Marker(mark))

        per_step = statistics.median(timed_steps(run, steps_n))
        result[f"{part}_s_per_step"] = round(per_step, 4)
        result[f"{part}_75_steps_s"] = round(75 * per_step, 1)
        result[f"{part}_peak_gib"] = peak_gib()
        result[f"{part}_finite"] = bool(torch.isfinite(holder["x"]).all())

    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() + ("" if args.size == "full" else "-reduced") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [("tuning step", result["tune_s_per_step"], result["tune_400_steps_s"], result["tune_peak_gib"]),
            ("inversion step", result["inversion_s_per_step"], result["inversion_75_steps_s"],
             result["inversion_peak_gib"]),
            ("key-frame step (guided)", result["keyframes_s_per_step"], result["keyframes_75_steps_s"],
             result["keyframes_peak_gib"])]
    print(f"{name}, {args.size} size, {result['dtype']}, key-frame UNet {params / 1e9:.2f} B parameters, "
          f"compile={args.compile}, gradient checkpointing={args.gradient_checkpointing}")
    print(f"{'part':<26}{'s/step':>10}{'400|75 steps s':>16}{'peak GiB':>10}")
    for label, s, total, peak in rows:
        print(f"{label:<26}{s:>10.4f}{total:>16.1f}{str(peak):>10}")
    print(f"tuning step: {result['tune_step_tflop']} TFLOP, {result['tune_tflops']} TFLOP/s achieved; "
          f"device bf16 matmul {result['bf16_matmul_tflops']} TFLOP/s")
    print(f"finite: tuning {result['tune_losses_finite']}, inversion {result['inversion_finite']}, "
          f"sampling {result['keyframes_finite']}")
    print(f"written {out}")


if __name__ == "__main__":
    main()
