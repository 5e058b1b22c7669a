"""The latent backbones (``zeroscope``, ``animatediff``) at full size with random weights:
tuning, inversion, guided key-frame sampling and the VAE, through vmc's own code.

    python benchmarks/latent_gpu.py [--backbone zeroscope|animatediff|both] [--size full|reduced]
                                    [--steps 6] [--sample-steps 10] [--dtype float16]
                                    [--gradient-checkpointing] [--offload] [--out FOLDER]

The sibling of ``show1_gpu.py``. Each model is built from its published layout with random
weights (no download) and handed to the backend through ``LatentVideoBackend.use_parts``,
the same call its loader makes after reading the files, so half precision (with float32
q/k/v masters), gradient checkpointing and offload are the backend's own. Then: the clip is
encoded with the VAE, the temporal q/k/v are tuned with the motion-distillation loss
(``vmc_cli.method.tuning.tune``), the latents are DDIM-inverted and guided DDIM sampling runs from
the inverted noise, and the result is decoded.

Layouts (``--size full``):

- zeroscope: diffusers' ``UNet3DConditionModel`` with the ZeroScope v2 UNet values as
  ../shared/reference/show1/sr2.unet.config.json records them (Show-1's sr2 is a ZeroScope
  fine-tune; the keys diffusers' class does not take are dropped), Stable Diffusion's VAE,
  OpenCLIP ViT-H/14's text tower (1024 wide, 23 layers); 24 key-frames at 576x320.
- animatediff: Stable Diffusion 1.5's ``UNet2DConditionModel`` joined with a
  ``MotionAdapter`` in the v1-5-2 layout (diffusers' defaults: mid-block motion module, 8
  heads, 32 positions) as ``UNetMotionModel``, Stable Diffusion's VAE, CLIP ViT-L/14's text
  tower; 16 key-frames at 512x512.

These are reconstructions written from the models' published descriptions, not read from
their config files (no network here). The counts they build (printed, and in the JSON) are
the published checkpoints' for SD1.5's UNet (859,520,964), the VAE (83,653,863) and CLIP
ViT-L/14's text tower (123,060,480), the reference's for the ZeroScope UNet (1,411,233,860);
the adapter builds 453,209,280 (its checkpoint is about 1.8 GB in float32) and the 23-layer
ViT-H/14 text tower 340,387,840.

Every run checks itself and exits 1 when a check fails: the tuning losses are finite, only
the temporal q/k/v changed (every other parameter bit-identical), inversion and sampling
are finite, and the decoded video has the key-frame shape. On a CPU ``--size reduced`` (the
default there) shrinks every width so that the whole script runs in about a minute; its
times say nothing about a GPU.

Prints a table per backbone and writes JSON to benchmarks/results/<device>-latent[-reduced].json:
per-step medians after a warm-up step (CUDA synchronised), projected to the backend's
defaults (400 tuning steps, 50 inversion and 50 sampling steps), and the peak memory of each
part (``torch.cuda.max_memory_allocated``, reset before it).
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from show1_gpu import (  # noqa: E402  (the timing and model helpers both benchmarks share)
    REFERENCE,
    Marker,
    SR2_CLIP_TEXT,
    SR2_VAE,
    byte_level_clip_tokenizer,
    peak_gib,
    peak_reset,
    random_model,
    timed_steps,
    wall,
    write_report,
)

PROMPT = "a red ball is rolling on a table"
#: the scheduler both default repositories ship (DDIM/PNDM over SD's scaled-linear betas)
SCHEDULER = {"_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
             "prediction_type": "epsilon"}
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
SD15_CLIP_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                      num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
MOTION_ADAPTER_V152 = dict(block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
                           motion_mid_block_layers_per_block=1, motion_num_attention_heads=8,
                           motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=True)
#: reduced widths (a CPU check): 32-64 channels, 2 text layers
REDUCED_BLOCKS = (32, 64, 64, 64)
REDUCED_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
#: key-frames (frames, width, height): the backends' defaults, and the reduced check's
SIZES = {"zeroscope": {"full": (24, 576, 320), "reduced": (8, 64, 64)},
         "animatediff": {"full": (16, 512, 512), "reduced": (8, 64, 64)}}


def zeroscope_unet_config(size: str) -> dict:
    from diffusers import UNet3DConditionModel

    stored = json.loads((REFERENCE / "sr2.unet.config.json").read_text())
    accepted = set(inspect.signature(UNet3DConditionModel.__init__).parameters) - {"self"}
    config = {k: v for k, v in stored.items() if k in accepted}
    if size == "reduced":
        config.update(block_out_channels=list(REDUCED_BLOCKS), attention_head_dim=8,
                      cross_attention_dim=REDUCED_TEXT["hidden_size"], layers_per_block=1)
    return config


def vae_config(size: str) -> dict:
    return {**SR2_VAE, **({"block_out_channels": list(REDUCED_BLOCKS), "layers_per_block": 1}
                          if size == "reduced" else {})}


def text_config(full: dict, size: str) -> dict:
    return {**full, **(REDUCED_TEXT if size == "reduced" else {})}


def qkv_of(backend) -> dict:
    """The parameters ``vmc tune`` trains by default (the temporal attention's q/k/v)."""
    from vmc_cli.method.tuning import select_parameters

    return select_parameters(backend.unet, "qkv", backend.temporal_attention_marker)


def build(name: str, size: str, device: str, dtype: str | None, checkpointing: bool, offload: bool):
    """The backend with random-weight models at ``size``, as its loader leaves it."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNet3DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vmc_cli.backend import torch_dtype
    from vmc_cli.models.plugins import get_backend
    from vmc_show1.stages import quiet_libraries

    backend = get_backend(name)
    backend.device = torch.device(device)
    backend.dtype = torch_dtype(dtype, backend.device.type, half_on_cuda=True)
    backend.gradient_checkpointing, backend.offload = checkpointing, offload
    build_on = "cpu" if offload else device  # offloaded parts are built (and kept) in CPU memory
    if name == "zeroscope":
        unet = random_model(lambda: UNet3DConditionModel(**zeroscope_unet_config(size)), device, backend.dtype)
        text = text_config(SR2_CLIP_TEXT, size)
    else:
        unet_cfg = {**SD15_UNET, **({"block_out_channels": REDUCED_BLOCKS, "attention_head_dim": 8,
                                     "cross_attention_dim": REDUCED_TEXT["hidden_size"]} if size == "reduced" else {})}
        adapter_cfg = {**MOTION_ADAPTER_V152, **({"block_out_channels": REDUCED_BLOCKS, "motion_num_attention_heads": 4}
                                                 if size == "reduced" else {})}
        unet2d = random_model(lambda: UNet2DConditionModel(**unet_cfg), device, backend.dtype)
        adapter = random_model(lambda: MotionAdapter(**adapter_cfg), device, backend.dtype)
        with quiet_libraries():  # diffusers warns on every .to(dtype)
            unet = UNetMotionModel.from_unet2d(unet2d, adapter).to(backend.dtype)
        del unet2d, adapter
        text = text_config(SD15_CLIP_TEXT, size)
    vae = random_model(lambda: AutoencoderKL(**vae_config(size)), build_on, backend.dtype)
    encoder = random_model(lambda: CLIPTextModel(CLIPTextConfig(**text)), build_on, backend.dtype)
    backend.use_parts(unet, vae, encoder, byte_level_clip_tokenizer(), SCHEDULER, backend.dtype)
    frames, width, height = SIZES[name][size]
    backend.num_frames, backend.width, backend.height = frames, width, height
    counts = {"unet": sum(p.numel() for p in unet.parameters()),
              "temporal_qkv": sum(p.numel() for p in qkv_of(backend).values()),
              "vae": sum(p.numel() for p in vae.parameters()), "text_encoder": sum(p.numel() for p in encoder.parameters())}
    return backend, counts


def bench(name: str, args) -> tuple[dict, list[str]]:
    from vmc_cli.method.inversion import ddim_invert
    from vmc_cli.method.sampling import ddim_sample, guided
    from vmc_cli.method.tuning import TuneConfig, tune

    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak_reset()
    backend, counts = build(name, args.size, device, args.dtype, args.gradient_checkpointing, args.offload)
    frames, width, height = backend.num_frames, backend.width, backend.height
    result = {"backbone": name, "size": args.size, "dtype": str(backend.dtype).replace("torch.", ""),
              "gradient_checkpointing": args.gradient_checkpointing, "offload": args.offload,
              "keyframes": [frames, width, height], "parameters": counts, "resident_gib": peak_gib()}
    failed: list[str] = []
    clip = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)

    z, result["encode_s"], result["encode_peak_gib"] = wall(lambda: backend.frames_to_model(clip))
    scale = backend.vae_scale
    if tuple(z.shape) != (1, 4, frames, height // scale, width // scale):
        failed.append(f"latent clip shape {tuple(z.shape)}")
    text = backend.encode_prompts([PROMPT, ""])
    prompt, empty = text[:1], text[1:]

    # -- tuning -------------------------------------------------------------------------------
    before = {n: p.detach().to("cpu", copy=True) for n, p in backend.unet.named_parameters()}
    peak_reset()
    losses = []

    def run_tune(mark):
        losses.extend(tune(backend, z, prompt, TuneConfig(steps=args.steps), on_step=mark)["losses"])

    per_step = statistics.median(timed_steps(run_tune, args.steps))
    result.update(tune_s_per_step=round(per_step, 4), tune_400_steps_s=round(400 * per_step, 1),
                  tune_peak_gib=peak_gib())
    if not all(np.isfinite(losses)):
        failed.append(f"tuning losses {losses}")
    changed = {n for n, p in backend.unet.named_parameters() if not torch.equal(p.detach().cpu(), before[n])}
    wrong = sorted(changed - set(qkv_of(backend)))
    if wrong or not changed:
        failed.append(f"tuning changed {len(wrong)} parameters outside the temporal q/k/v ({wrong[:3]})"
                      if wrong else "tuning changed nothing")
    result["tuned_parameters_changed"] = len(changed)
    del before

    # -- inversion, sampling, decoding -----------------------------------------------------------
    holder = {}
    for part in ("inversion", "sampling"):
        peak_reset()

        def run(mark, part=part):
            if part == "inversion":
                holder[part] = ddim_invert(lambda x, t: backend.predict_noise(x, t, empty.expand(x.shape[0], -1, -1)),
                                           backend.inversion_scheduler(), z, args.sample_steps, Marker(mark))
            else:
                predict = guided(backend.predict_noise, prompt, empty, backend.defaults["guidance"])
                holder[part] = ddim_sample(predict, backend.sampling_scheduler(), holder["inversion"],
                                           args.sample_steps, Marker(mark))

        per_step = statistics.median(timed_steps(run, args.sample_steps))
        result[f"{part}_s_per_step"] = round(per_step, 4)
        result[f"{part}_50_steps_s"] = round(50 * per_step, 1)
        result[f"{part}_peak_gib"] = peak_gib()
        if not bool(torch.isfinite(holder[part]).all()):
            failed.append(f"{part} is not finite")
    video, result["decode_s"], result["decode_peak_gib"] = wall(lambda: backend.model_to_frames(holder["sampling"]))
    if video.shape != (frames, height, width, 3):
        failed.append(f"decoded shape {video.shape}")
    result["generate_s"] = round(result["inversion_50_steps_s"] + result["sampling_50_steps_s"] + result["decode_s"], 1)
    result["checks"] = "passed" if not failed else failed
    return result, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", choices=("zeroscope", "animatediff", "both"), default="both")
    ap.add_argument("--size", choices=("full", "reduced"), default=None,
                    help="full on a GPU, reduced (a self-check at small widths) on a CPU by default")
    ap.add_argument("--steps", type=int, default=6, help="tuning steps to time (the first is a warm-up)")
    ap.add_argument("--sample-steps", type=int, default=10, help="inversion and sampling steps to time")
    ap.add_argument("--dtype", default=None, help="default: float16 on CUDA, float32 on a CPU")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="as VMC_<BACKEND>_GRADIENT_CHECKPOINTING=1")
    ap.add_argument("--offload", action="store_true", help="as VMC_<BACKEND>_OFFLOAD=1")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-latent[-reduced].json)")
    args = ap.parse_args()
    if args.steps < 2 or args.sample_steps < 2:
        ap.error("--steps and --sample-steps must be at least 2 (the first step is a warm-up)")
    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    args.size = args.size or ("full" if torch.cuda.is_available() else "reduced")
    names = ("zeroscope", "animatediff") if args.backbone == "both" else (args.backbone,)
    report = {"device": device_name, "torch": torch.__version__,
              "command": shlex.join(["python", "benchmarks/latent_gpu.py", *sys.argv[1:]]), "backbones": {}}
    all_failed = []
    for name in names:
        result, failed = bench(name, args)
        report["backbones"][name] = result
        all_failed += [f"{name}: {f}" for f in failed]
        c = result["parameters"]
        print(f"{name}: {device_name}, {args.size} size, {result['dtype']}, key-frames "
              f"{result['keyframes'][0]}x{result['keyframes'][1]}x{result['keyframes'][2]}, UNet {c['unet'] / 1e6:.1f} M "
              f"(temporal q/k/v {c['temporal_qkv'] / 1e6:.1f} M), VAE {c['vae'] / 1e6:.1f} M, text "
              f"{c['text_encoder'] / 1e6:.1f} M; checkpointing={args.gradient_checkpointing}, offload={args.offload}")
        print(f"  {'part':<18}{'s/step':>10}{'projected':>12}{'s':>9}{'peak GiB':>10}")
        for label, key, steps in (("tuning", "tune", 400), ("inversion", "inversion", 50), ("sampling", "sampling", 50)):
            total = result[f"{key}_400_steps_s" if key == "tune" else f"{key}_50_steps_s"]
            print(f"  {label:<18}{result[f'{key}_s_per_step']:>10.4f}{f'{steps} steps':>12}{total:>9.1f}"
                  f"{str(result[f'{key}_peak_gib']):>10}")
        for label, key in (("VAE encode", "encode"), ("VAE decode", "decode")):
            print(f"  {label:<18}{'':>10}{'once':>12}{result[f'{key}_s']:>9.2f}{str(result[f'{key}_peak_gib']):>10}")
        print(f"  generation (50 + 50 steps and decoding): {result['generate_s']} s; checks: "
              f"{'passed' if not failed else '; '.join(failed)}")
        del result
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    write_report(report, args.out, device_name, "latent", args.size)
    if all_failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
