"""Show-1 on a GPU, every stage at full size with random weights: tuning, inversion,
key-frame sampling, interpolation, both super-resolution stages and the whole cascade.

    python benchmarks/show1_gpu.py [--size full|reduced] [--steps 6] [--sample-steps 10] [--dtype float16]
                                   [--cascade-steps N] [--keyframe-size 64x40] [--offload auto|1|0]
                                   [--skip-cascade] [--gradient-checkpointing] [--compile MODE]

Builds every model of the cascade from the real configurations
(../shared/reference/show1/, or $VMC_SHOW1_REFERENCE: ``<stage>.unet.config.json`` and the
scheduler configs in ``pipeline_files.json``) with random weights, so no download is
needed, and hands them to the ``show1`` backend exactly as its loader would
(``Show1Backend._unet`` for the key-frame model, ``_stage_models[role]`` for the later
stages, which ``_stage``/``_load_stage`` then return). Everything then runs through vmc's
own code: the tuning loop, DDIM inversion, guided DDIM sampling and
``Show1Backend.run_cascade`` (each later stage alone, then the whole cascade, on the
sampled key-frames). The T5 states of the prompts are random tensors put into the
backend's embedding cache (the 4.7-billion-parameter T5 encoder is not built).

Models the reference data does not describe are reconstructions, said so in the JSON:
DeepFloyd IF-II-L (sr1's first frame; a 2-D IF stage-II UNet with 192 base channels and
multipliers 1,2,4,6,8: 1.23 billion parameters, the model card's 1.2B), sr2's VAE (Stable
Diffusion's) and CLIP text encoder (OpenCLIP ViT-H/14's text tower) and the unpublished
scheduler configs of interpolation (= base), sr1, IF-II-L and the image-noising one of both
super-resolution-1 models (the IF-style guesses of tests/test_show1_backend.py).
sr2's tokenizer is a byte-level CLIP tokenizer built offline (the prompt is padded to 77
tokens either way, so the cost is the real one).

Prints a table and writes JSON to benchmarks/results/<device>[-reduced].json. Tuning,
inversion and key-frame times are medians of per-step times after a warm-up step
(CUDA synchronised). Later stages: ``<stage>_s`` is the wall time of one run with the
steps actually run (``<stage>_steps``; Show-1's by default, fewer with
``--cascade-steps``), ``<stage>_projected_s`` that time with the per-step median of each
denoising loop scaled up to Show-1's step counts. Each stage alone runs first (so one-time
costs such as cuDNN autotuning fall there), then the whole cascade. Peak memory is
``torch.cuda.max_memory_allocated`` reset before each part; ``<stage>_resident_gib`` is
what was already allocated when the part started (the weights kept on the GPU).
``--size reduced`` shrinks the widths so the script can be checked on a CPU (then no
memory figures, and the times say nothing about a GPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("VMC_SHOW1_REFERENCE", ROOT.parent / "shared" / "reference" / "show1"))
PROMPT = "a red ball is rolling on a table"

#: widths for ``--size reduced`` (pixel stages; the T5 states are REDUCED_TEXT wide)
REDUCED_TEXT = 128
REDUCED_PIXEL = dict(attention_head_dim=8, encoder_hid_dim=REDUCED_TEXT, cross_attention_dim=64, norm_num_groups=32)
#: DeepFloyd IF-II-L's UNet (diffusers' UNet2DConditionModel). Not in the reference data:
#: IF-II-M's layout (= sr1's config in 2-D, 461 M parameters, the card's 450M) with 192 base
#: channels and multipliers 1,2,4,6,8 (1.23 B parameters, the card's 1.2B).
IF_II_L_UNET = dict(
    sample_size=256, in_channels=6, out_channels=6, layers_per_block=[2, 2, 3, 4, 2],
    block_out_channels=[192, 384, 768, 1152, 1536],
    down_block_types=["ResnetDownsampleBlock2D"] * 3 + ["SimpleCrossAttnDownBlock2D"] * 2,
    mid_block_type="UNetMidBlock2DSimpleCrossAttn",
    up_block_types=["SimpleCrossAttnUpBlock2D"] * 2 + ["ResnetUpsampleBlock2D"] * 3,
    cross_attention_dim=1536, encoder_hid_dim=4096, attention_head_dim=64, addition_embed_type="text",
    addition_embed_type_num_heads=64, cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
    act_fn="gelu", class_embed_type="timestep", mid_block_scale_factor=1.4142271248762552,
    resnet_out_scale_factor=1.4142271248762552, resnet_skip_time_act=True, time_embedding_act_fn="gelu",
    time_embedding_dim=1536, norm_num_groups=32,
)
#: sr2's VAE (ZeroScope = Stable Diffusion's AutoencoderKL) and CLIP text encoder (OpenCLIP ViT-H/14 text)
SR2_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
               up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
               latent_channels=4, norm_num_groups=32, sample_size=768, scaling_factor=0.18215)
SR2_CLIP_TEXT = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                     num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=1024)
#: scheduler configs missing from pipeline_files.json (the same guesses as tests/test_show1_backend.py)
IF_SCHEDULER = {"_class_name": "DDPMScheduler", "beta_schedule": "squaredcos_cap_v2", "clip_sample": True,
                "dynamic_thresholding_ratio": 0.95, "num_train_timesteps": 1000, "prediction_type": "epsilon",
                "sample_max_value": 1.0, "thresholding": True, "variance_type": "learned_range"}
NOISING_SCHEDULER = {"_class_name": "DDPMScheduler", "beta_schedule": "squaredcos_cap_v2", "clip_sample": False,
                     "num_train_timesteps": 1000, "variance_type": "fixed_small"}


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_reset():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def wall(fn):
    """``fn()``, its wall time in seconds (device synchronised) and the peak GPU memory it reached."""
    peak_reset()
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, round(time.perf_counter() - t0, 3), peak_gib()


def write_report(report: dict, out: str | None, device_name: str, name: str, size: str) -> Path:
    """``report`` as JSON at ``out``, by default benchmarks/results/<device>-<name>[-reduced].json."""
    import json

    path = Path(out) if out else ROOT / "benchmarks" / "results" / (
        re.sub(r"[^A-Za-z0-9]+", "-", device_name).strip("-").lower() + f"-{name}"
        + ("" if size == "full" else "-reduced") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {path}")
    return path


def allocated_gib() -> float | None:
    return round(torch.cuda.memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


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


# -- configurations -------------------------------------------------------------------------
def unet_config(stage: str, size: str) -> dict:
    """A Show-1 UNet config from the reference data (``base``, ``interp``, ``sr1``, ``sr2``),
    its widths shrunk for ``--size reduced`` (block types and depths per block kept)."""
    config = json.loads((REFERENCE / f"{stage}.unet.config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if size == "reduced":
        config.update(block_out_channels=[64] * len(config["block_out_channels"]), layers_per_block=1)
        if config.get("encoder_hid_dim") is None:  # sr2: CLIP states go straight to cross-attention
            config.update(attention_head_dim=8, cross_attention_dim=64, norm_num_groups=32)
        else:
            config.update(REDUCED_PIXEL)
        if config.get("time_embedding_dim"):
            config["time_embedding_dim"] = 128
    return config


def if_ii_config(size: str) -> dict:
    config = dict(IF_II_L_UNET)
    if size == "reduced":
        config.update(block_out_channels=[64] * 5, layers_per_block=1, time_embedding_dim=128, **REDUCED_PIXEL)
    return config


def _json_floats(config: dict) -> dict:
    """pipeline_files.json writes -Infinity as a string (strict JSON): back to a float."""
    special = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
    return {k: special.get(v, v) if isinstance(v, str) else v for k, v in config.items()}


def scheduler_configs() -> tuple[dict[str, dict], list[str]]:
    """Scheduler configs per role (``sr1_noising``: sr1's and IF-II's image noising scheduler),
    and the roles whose config is a reconstruction (not in pipeline_files.json)."""
    files = json.loads((REFERENCE / "pipeline_files.json").read_text())

    def published(repo: str, name: str = "scheduler/scheduler_config.json") -> dict | None:
        content = (files.get(repo, {}).get(name) or {}).get("content")
        return _json_floats(content) if content else None

    base = published("show-1-base")
    found = {"keyframes": base, "interpolation": published("show-1-interpolation"),
             "sr1": published("show-1-sr1"), "sr1_noising": published("show-1-sr1", "image_noising_scheduler/"
                                                                                     "scheduler_config.json"),
             "sr1_first_frame": None, "sr2": published("show-1-sr2")}
    guesses = {"interpolation": base, "sr1": {**base, "sample_max_value": 1.0, "variance_type": "learned_range"},
               "sr1_noising": NOISING_SCHEDULER, "sr1_first_frame": IF_SCHEDULER}
    guessed = sorted(role for role, config in found.items() if config is None)  # sr1_noising: sr1's and IF-II's
    return {role: config if config is not None else guesses[role] for role, config in found.items()}, guessed


def random_model(make, device, dtype):
    """``make()`` built on ``device`` with random weights (seed 0), in ``dtype``, frozen."""
    from vmc_show1.stages import quiet_libraries

    torch.manual_seed(0)
    with torch.device(device):
        model = make()
    with quiet_libraries():  # diffusers warns on every .to(dtype) ("modules to keep in float32: []")
        model = model.to(dtype)
    return model.eval().requires_grad_(False)


def fake_resolved(role: str):
    from vmc_show1.repos import REPOS, Resolved

    return Resolved(REPOS[role], Path("<random weights>"), "random", "random")


def byte_level_clip_tokenizer():
    """A CLIP tokenizer built offline: every byte (with and without the end-of-word mark), no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in sorted(ByteLevel.alphabet()):
            vocab.setdefault(ch + suffix, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_backend(size: str, device: str, dtype: str, keyframe_size=(64, 40), offload="auto"):
    """The ``show1`` backend with a random key-frame UNet (as ``_load_keyframe_model`` leaves it)."""
    from vmc_show1.backend import Show1Backend
    from vmc_pixel.unet import Show1UNet3DConditionModel

    config = unet_config("base", size)
    schedulers, _ = scheduler_configs()
    backend = Show1Backend(keyframe_size=keyframe_size, offload=offload)
    backend.name = "show1"
    backend._set_device(device, dtype)
    unet = random_model(lambda: Show1UNet3DConditionModel.from_config(config), device, backend.dtype)
    if backend.dtype != torch.float32:  # as the backend does: fp32 master weights for what tuning trains
        for name, module in unet.named_modules():
            if name.rsplit(".", 1)[-1] == backend.temporal_attention_marker:
                module.to(torch.float32)
    backend._unet = unet
    backend._scheduler_config = {k: v for k, v in schedulers["keyframes"].items() if not k.startswith("_")}
    backend._resolved["keyframes"] = fake_resolved("keyframes")
    return backend, config


def build_cascade(backend, size: str) -> dict[str, int]:
    """Random-weight models of every later stage, put where ``Show1Backend._load_stage`` puts
    what it loads (``_stage_models[role]``, in CPU memory when offloading), with the same
    keys; returns the parameters per role."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vmc_show1.backend import IN_CHANNELS
    from vmc_show1.schedulers import scheduler_from_config
    from vmc_pixel.unet import Show1UNet3DConditionModel

    schedulers, _ = scheduler_configs()
    where = torch.device("cpu") if backend._offloading else backend.device
    build = backend.device  # built on the device (fast), then moved where the loader keeps it

    def model(make):
        return random_model(make, build, backend.dtype).to(where)

    def show1(stage):
        config = unet_config(stage, size)
        return model(lambda: Show1UNet3DConditionModel.from_config(config))

    tokenizer = byte_level_clip_tokenizer()
    clip = dict(SR2_CLIP_TEXT) if size == "full" else dict(vocab_size=len(tokenizer), hidden_size=64,
                                                           intermediate_size=128, num_hidden_layers=1,
                                                           num_attention_heads=2, max_position_embeddings=77)
    vae = dict(SR2_VAE) if size == "full" else {**SR2_VAE, "block_out_channels": [32, 32, 64, 64],
                                                 "layers_per_block": 1}
    if_config = if_ii_config(size)
    noising = schedulers["sr1_noising"]
    stages = {
        "interpolation": {"scheduler": scheduler_from_config(schedulers["interpolation"]), "unet": show1("interp")},
        "sr1_first_frame": {"scheduler": scheduler_from_config(schedulers["sr1_first_frame"]),
                            "unet": model(lambda: UNet2DConditionModel(**if_config)),
                            "noising_scheduler": scheduler_from_config(noising)},
        "sr1": {"scheduler": scheduler_from_config(schedulers["sr1"]), "unet": show1("sr1"),
                "noising_scheduler": scheduler_from_config(noising)},
        "sr2": {"scheduler": scheduler_from_config(schedulers["sr2"]), "unet": show1("sr2"),
                "vae": model(lambda: AutoencoderKL(**vae)),
                "text_encoder": model(lambda: CLIPTextModel(CLIPTextConfig(**clip, bos_token_id=0, eos_token_id=1,
                                                                           pad_token_id=1))),
                "tokenizer": tokenizer},
    }
    parameters = {}
    for role, models in stages.items():
        assert models["unet"].config.in_channels == IN_CHANNELS[role], role
        backend._stage_models[role] = models
        backend._resolved[role] = fake_resolved(role)
        parameters[role] = sum(p.numel() for m in models.values() if isinstance(m, torch.nn.Module)
                               for p in m.parameters())
    return parameters


def cache_prompt_states(backend, text_dim: int, prompts=(PROMPT, "")) -> None:
    """Random T5 states for ``prompts`` in the backend's embedding cache (no T5 encoder is built)."""
    g = torch.Generator("cpu").manual_seed(1)
    for prompt in prompts:
        backend._embeddings[backend._clean(prompt)] = torch.randn(77, text_dim, generator=g).to(backend.device,
                                                                                             backend.dtype)


def sr2_steps_for(denoising_steps: int, strength: float) -> int:
    """sr2's ``steps`` setting that runs ``denoising_steps`` steps at ``strength`` (int(steps * strength))."""
    steps = max(1, math.ceil(denoising_steps / strength))
    while int(steps * strength) < denoising_steps:
        steps += 1
    return steps


# -- timing ------------------------------------------------------------------------------------
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


def Marker(mark):
    """Progress that calls ``mark`` after every step of a tracked loop (inversion, sampling)."""
    from vmc_cli.progress import Reporter

    class StepMarker(Reporter):
        def track(self, iterable, description, total=None):
            for item in iterable:
                yield item
                mark()

    return StepMarker(enabled=False)


def _reporter():
    from vmc_cli.progress import Reporter

    class Clock(Reporter):
        """Progress that stamps the time (CUDA synchronised) at the start of every task and
        after each of its steps: ``tasks`` = [(description, [t0, t1, ...]), ...]."""

        def __init__(self):
            super().__init__(enabled=False)
            self.tasks: list[tuple[str, list[float]]] = []

        def task(self, description, total):
            sync()
            stamps = [time.perf_counter()]
            self.tasks.append((description, stamps))
            return Stamp(stamps)

    class Stamp:
        def __init__(self, stamps):
            self.stamps = stamps

        def advance(self, n=1, info=None):
            sync()
            self.stamps.append(time.perf_counter())

    return Clock()


def settings_key(label: str) -> str:
    """The STAGE_SETTINGS entry of a progress task of ``run_cascade``."""
    if label.startswith("interpolation"):
        return "interpolation"
    if label.startswith("super-resolution 1, first frame"):
        return "sr1_first_frame"
    if label.startswith("super-resolution 1"):
        return "sr1"
    if label.startswith("super-resolution 2"):
        return "sr2"
    raise ValueError(f"unknown cascade task {label!r}")


def show1_steps(key: str) -> int:
    """Denoising steps Show-1 runs per loop of a stage (sr2: its 50 steps at strength 0.8 run 40)."""
    from vmc_show1.backend import STAGE_SETTINGS

    s = STAGE_SETTINGS[key]
    return max(1, min(s["steps"], int(s["steps"] * s["strength"]))) if "strength" in s else s["steps"]


def cascade_figures(clock, seconds: float) -> dict:
    """Steps run, and ``seconds`` projected to Show-1's step counts: every denoising loop's
    per-step median (after its first step when there are more) times the steps it lacks."""
    run = extra = 0
    for label, stamps in clock.tasks:
        steps = [b - a for a, b in zip(stamps, stamps[1:])]
        if not steps:
            continue
        per_step = statistics.median(steps[1:] if len(steps) > 1 else steps)
        run += len(steps)
        extra += (show1_steps(settings_key(label)) - len(steps)) * per_step
    return {"steps": run, "projected_s": round(seconds + extra, 3)}


def time_cascade(backend, video, stages=None) -> tuple[dict, "object"]:
    """One ``run_cascade`` (``stages``: all by default): seconds, peak memory, steps, projection."""
    peak_reset()
    resident = allocated_gib()
    clock = _reporter()
    sync()
    t = time.perf_counter()
    frames = backend.run_cascade(video, PROMPT, stages=stages, progress=clock)
    sync()
    seconds = time.perf_counter() - t
    return {"s": round(seconds, 3), "peak_gib": peak_gib(), "resident_gib": resident,
            **cascade_figures(clock, seconds), "frames": list(frames.shape)}, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "reduced"), default="full")
    ap.add_argument("--steps", type=int, default=6, help="tuning steps to time (first one is warm-up)")
    ap.add_argument("--sample-steps", type=int, default=10)
    ap.add_argument("--cascade-steps", type=int, default=None, metavar="N",
                    help="denoising steps per loop of every later stage (default: Show-1's 75/70/125/40); "
                         "times are also projected to Show-1's")
    ap.add_argument("--keyframe-size", default="64x40", metavar="WxH",
                    help="key-frame size (sr1 makes 4x, sr2 576x320 scaled alike)")
    ap.add_argument("--offload", default="auto", choices=("auto", "1", "0"),
                    help="VMC_SHOW1_OFFLOAD: keep the stages not running in CPU memory")
    ap.add_argument("--skip-cascade", action="store_true", help="key-frame parts only")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--compile", default=None, metavar="MODE",
                    help="torch.compile the key-frame UNet (default, reduce-overhead, max-autotune...)")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    args = ap.parse_args()
    if args.cascade_steps is not None and args.cascade_steps < 1:
        ap.error("--cascade-steps must be at least 1")

    from vmc_cli.method.inversion import ddim_invert
    from vmc_cli.method.sampling import ddim_sample, guided
    from vmc_cli.method.tuning import TuneConfig, tune
    from vmc_show1.backend import STAGE_SETTINGS, _size

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    keyframe_size = _size(args.keyframe_size, "--keyframe-size")
    backend, config = build_backend(args.size, device, args.dtype, keyframe_size, args.offload)
    params = sum(p.numel() for p in backend.unet.parameters())
    frames, h, w = backend.num_frames, backend.height, backend.width
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
              "keyframe_size": list(keyframe_size), "keyframe_unet_parameters": params, "torch": torch.__version__}

    # -- tuning ---------------------------------------------------------------------------
    peak_reset()

    def run_tune(mark):
        result["tune_losses"] = tune(backend, clip, text[:1], TuneConfig(steps=args.steps), on_step=mark)["losses"]

    tune_steps = timed_steps(run_tune, args.steps)
    result["tune_peak_gib"] = peak_gib()
    result["tune_s_per_step"] = round(statistics.median(tune_steps), 4)
    result["tune_400_steps_s"] = round(400 * result["tune_s_per_step"], 1)
    result["tune_step_tflop"] = round(flops["tune_step"] / 1e12, 3)
    tflops = flops["tune_step"] / result["tune_s_per_step"] / 1e12
    result["tune_tflops"] = round(tflops, 1 if tflops >= 1 else 4)
    result["bf16_matmul_tflops"] = matmul_tflops()
    result["tune_losses_finite"] = all(v == v and abs(v) != float("inf") for v in result.pop("tune_losses"))

    # -- inversion and sampling -----------------------------------------------------------
    empty, prompt = text[1:], text[:1]
    holder = {}
    for part, steps_n in (("inversion", args.sample_steps), ("keyframes", args.sample_steps)):
        peak_reset()

        def run(mark, part=part, steps_n=steps_n):
            if part == "inversion":
                holder[part] = ddim_invert(lambda x, t: backend.predict_noise(x, t, empty.expand(x.shape[0], -1, -1)),
                                           backend.inversion_scheduler(), clip.to(backend.dtype), steps_n, Marker(mark))
            else:
                predict = guided(backend.predict_noise, prompt, empty, 9.0)
                holder[part] = ddim_sample(predict, backend.sampling_scheduler(), torch.randn_like(clip), steps_n,
                                           Marker(mark))

        per_step = statistics.median(timed_steps(run, steps_n))
        result[f"{part}_s_per_step"] = round(per_step, 4)
        result[f"{part}_75_steps_s"] = round(75 * per_step, 1)
        result[f"{part}_peak_gib"] = peak_gib()
        result[f"{part}_finite"] = bool(torch.isfinite(holder[part]).all())

    # -- the later stages and the whole cascade ----------------------------------------------
    if not args.skip_cascade:
        if args.cascade_steps is not None:
            n = args.cascade_steps
            backend.stage_settings.update({key: {**backend.stage_settings[key], "steps": n}
                                           for key in ("interpolation", "sr1_first_frame", "sr1")})
            backend.stage_settings["sr2"]["steps"] = sr2_steps_for(n, backend.stage_settings["sr2"]["strength"])
        _, guessed = scheduler_configs()
        result["cascade_sizes"] = {k: list(v) for k, v in backend.sizes.items()}
        result["cascade_stage_steps"] = {k: v["steps"] for k, v in backend.stage_settings.items()}
        result["show1_stage_steps"] = {k: v["steps"] for k, v in STAGE_SETTINGS.items()}
        result["reconstructed"] = ["sr1_first_frame UNet (IF-II-L)", "sr2 VAE", "sr2 CLIP text encoder",
                                   "sr2 tokenizer (byte-level)"] + [
            "sr1 and IF-II-L image noising scheduler" if role == "sr1_noising" else f"{role} scheduler"
            for role in guessed]
        peak_reset()
        result["cascade_parameters"] = build_cascade(backend, args.size)
        result["offloading"] = backend._offloading
        cache_prompt_states(backend, config["encoder_hid_dim"])
        keyframes = holder["keyframes"]
        video = keyframes
        for stage in backend.cascade_stages:  # each stage alone, on the previous stage's output
            figures, out = time_cascade(backend, video, (stage,))
            result.update({f"{stage}_{k}": v for k, v in figures.items()})
            video = backend.frames_to_model(out)
        figures, out = time_cascade(backend, keyframes)
        result.update({f"cascade_{k}": v for k, v in figures.items()})
        result["cascade_frames_vary"] = bool(out.std() > 0)

    # one entry per part: seconds for the whole part (tuning: 400 steps; inversion, key-frames: 75)
    result["stages"] = {"tuning": {"s": result["tune_400_steps_s"], "peak_gib": result["tune_peak_gib"]},
                        "inversion": {"s": result["inversion_75_steps_s"], "peak_gib": result["inversion_peak_gib"]},
                        "keyframes": {"s": result["keyframes_75_steps_s"], "peak_gib": result["keyframes_peak_gib"]}}
    for stage in () if args.skip_cascade else (*backend.cascade_stages, "cascade"):
        result["stages"][stage] = {"s": result[f"{stage}_s"], "show1_steps_s": result[f"{stage}_projected_s"],
                                   "peak_gib": result[f"{stage}_peak_gib"], "steps": result[f"{stage}_steps"]}

    out_path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() + ("" if args.size == "full" else "-reduced") + ".json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    rows = [("tuning step", result["tune_s_per_step"], "400 steps", result["tune_400_steps_s"],
             result["tune_peak_gib"]),
            ("inversion step", result["inversion_s_per_step"], "75 steps", result["inversion_75_steps_s"],
             result["inversion_peak_gib"]),
            ("key-frame step (guided)", result["keyframes_s_per_step"], "75 steps", result["keyframes_75_steps_s"],
             result["keyframes_peak_gib"])]
    print(f"{name}, {args.size} size, {result['dtype']}, key-frame UNet {params / 1e6:.1f} M parameters, "
          f"key-frames {w}x{h}, compile={args.compile}, gradient checkpointing={args.gradient_checkpointing}")
    print(f"{'part':<26}{'s/step':>10}{'':>11}{'s':>10}{'peak GiB':>10}")
    for label, s, what, total, peak in rows:
        print(f"{label:<26}{s:>10.4f}{what:>11}{total:>10.1f}{str(peak):>10}")
    print(f"tuning step: {result['tune_step_tflop']} TFLOP, {result['tune_tflops']} TFLOP/s achieved; "
          f"device bf16 matmul {result['bf16_matmul_tflops']} TFLOP/s")
    print(f"finite: tuning {result['tune_losses_finite']}, inversion {result['inversion_finite']}, "
          f"sampling {result['keyframes_finite']}")
    if not args.skip_cascade:
        print(f"later stages: offloading={result['offloading']}, steps set {result['cascade_stage_steps']} "
              f"(Show-1: {result['show1_stage_steps']}); 'Show-1 s' projects each loop to Show-1's steps")
        print(f"{'stage':<26}{'params M':>10}{'steps':>7}{'s':>10}{'Show-1 s':>10}{'peak GiB':>10}"
              f"{'resident':>10}  frames")
        for stage, roles in (("interpolation", ("interpolation",)), ("sr1", ("sr1_first_frame", "sr1")),
                             ("sr2", ("sr2",)), ("cascade", tuple(result["cascade_parameters"]))):
            n = sum(result["cascade_parameters"][r] for r in roles) / 1e6
            print(f"{stage:<26}{n:>10.1f}{result[f'{stage}_steps']:>7}{result[f'{stage}_s']:>10.2f}"
                  f"{result[f'{stage}_projected_s']:>10.1f}{str(result[f'{stage}_peak_gib']):>10}"
                  f"{str(result[f'{stage}_resident_gib']):>10}  {'x'.join(map(str, result[f'{stage}_frames']))}")
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
