"""The Wan 2.1 backend (``wan``) at full size with random weights: LoRA tuning, flow
inversion, guided key-frame sampling and the VAE, through vmc's own code.

    python benchmarks/wan_gpu.py [--size full|reduced] [--steps 6] [--sample-steps 10]
                                 [--dtype bfloat16] [--gradient-checkpointing] [--offload]
                                 [--frames 33] [--rank 16] [--out FOLDER]

The sibling of ``latent_gpu.py``. Wan2.1-T2V-1.3B is built from its published layout with
random weights (no download, no network) and handed to the backend through
``WanBackend.use_parts``, the same call its loader makes after reading the files, so the
precision (bfloat16 weights, float32 VAE and LoRA adapters), gradient checkpointing and
offload are the backend's own. The key-frame fields are set as ``WanBackend.configure`` sets
them from the configs (temporal factor 4, sizes in multiples of 16, 33 frames at 832x480 by
default). Then, as ``vmc tune`` and ``vmc generate`` do: the prompts are encoded and the text
encoder released, the clip is encoded with the VAE, LoRA adapters of rank ``--rank`` on
attn1's q and k (``WanBackend.add_lora``) are tuned with the motion-distillation loss
(``vmc_cli.method.tuning.tune``, target ``vmc_wan.backend.LORA_TARGET``), the latents are inverted
(flow-matching Euler under the empty prompt) and key-frames sampled from them with guidance
(``vmc_cli.method.pipeline.MotionPipeline``), and the result is decoded.

Layouts (``--size full``), reconstructions written from the published configuration of
``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``, not read from the hub (no network here):

- transformer: diffusers' ``WanTransformer3DModel`` with patch size (1, 2, 2), 12 heads of
  128, 16 latent channels in and out, text width 4096, frequency width 256, feed-forward
  8960, 30 layers, cross-attention norm, ``rms_norm_across_heads`` q/k norm, eps 1e-6, rope
  length 1024: 1,418,996,800 parameters (the backend's notes count 1.42e9);
- VAE: ``AutoencoderKLWan`` with diffusers' defaults (base width 96, 16 latent channels, and
  the real ``latents_mean``/``latents_std``, which are its defaults): 126,892,531 parameters;
- text encoder: ``UMT5EncoderModel`` in umt5-xxl's shape (width 4096, 64 heads of 64,
  feed-forward 10240 gated-gelu, 24 layers, vocabulary 256,384): 5,680,910,336 parameters;
  the tokenizer is ``vmc_wan.tiny.tiny_tokenizer(512)`` (letters only; the prompt is padded
  to the 512 tokens Wan's is, which is what the timing depends on).

The scheduler config is ``FlowMatchEulerDiscreteScheduler`` with Wan's 480p shift of 3 (what
the backend makes of the hub's UniPC config). On a GPU the transformer is built in float32
and cast (as ``latent_gpu.py`` builds its models), the text encoder directly in the run's
dtype on the device (no 23 GB float32 copy), the VAE in float32 as the loader keeps it; with
``--offload`` the VAE and text encoder are built in CPU memory. "build" times random
initialisation, not reading 17 GB of files.

Every run checks itself and exits 1 when a check fails: the tuning losses are finite, only
the LoRA parameters changed (every other transformer parameter bit-identical), inversion and
sampling are finite, and the decoded video has the key-frame shape (frames, H, W, 3). On a
CPU ``--size reduced`` (the default there) shrinks every width and the layers, 5 frames at
64x64, so that the whole script runs in well under a minute; its times say nothing about a GPU.

Prints a table and writes JSON to benchmarks/results/<device>-wan[-reduced].json: per-step
medians after a warm-up step (CUDA synchronised), projected to the backend's defaults (400
tuning steps, 50 inversion and 50 sampling steps), and the peak memory of each part
(``torch.cuda.max_memory_allocated``, reset before it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here reads the hub

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from show1_gpu import (  # noqa: E402
    ROOT, Marker, allocated_gib, peak_gib, peak_reset, random_model, timed_steps, wall, write_report)

if str(ROOT / "backends") not in sys.path:  # a source checkout without pip install -e
    sys.path.insert(0, str(ROOT / "backends"))

PROMPT = "a cat is roaring"
#: what WanBackend.noise_scheduler_config makes of the hub's UniPC config (flow_shift 3)
SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
#: Wan2.1-T2V-1.3B's transformer/config.json, as published
WAN13B_TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                          out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
                          cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
#: diffusers' AutoencoderKLWan defaults are Wan 2.1's VAE (latents_mean/std included)
WAN_VAE: dict = {}
#: google/umt5-xxl's encoder
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
                tie_word_embeddings=False)
#: reduced widths (a CPU check): 2 heads of 32, 2 blocks, a 2-layer 64-wide text encoder
REDUCED_TRANSFORMER = dict(num_attention_heads=2, attention_head_dim=32, text_dim=64, freq_dim=32, ffn_dim=128,
                           num_layers=2)
REDUCED_VAE = dict(base_dim=16, num_res_blocks=1)
REDUCED_TEXT = dict(vocab_size=256, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
#: key-frames (frames, width, height): the backend's defaults, and the reduced check's
SIZES = {"full": (33, 832, 480), "reduced": (5, 64, 64)}


def transformer_config(size: str) -> dict:
    return {**WAN13B_TRANSFORMER, **(REDUCED_TRANSFORMER if size == "reduced" else {})}


def vae_config(size: str) -> dict:
    return {**WAN_VAE, **(REDUCED_VAE if size == "reduced" else {})}


def text_config(size: str) -> dict:
    return {**UMT5_XXL, **(REDUCED_TEXT if size == "reduced" else {})}


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def direct_model(make, device, dtype):
    """``make()`` built on ``device`` in ``dtype`` from the start (seed 0), frozen: no float32 copy."""
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        model = make()
    return model.eval().requires_grad_(False)


def lora_names(backend) -> set[str]:
    """The parameters tuning trains: :data:`vmc_wan.backend.LORA_TARGET` over the transformer."""
    from vmc_wan.backend import LORA_TARGET

    return {n for n, _ in backend.unet.named_parameters() if re.search(LORA_TARGET, n)}


def build(args, device: str):
    """The backend with random-weight models at ``args.size``, as ``load`` leaves it with ``lora_rank``."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from vmc_cli.backend import torch_dtype
    from vmc_wan.backend import WanBackend, check_frame_count
    from vmc_wan.tiny import tiny_tokenizer

    backend = WanBackend()
    backend.name = "wan"
    backend.device = torch.device(device)
    # as load(): bfloat16 on CUDA by default (float16 overflows in Wan's attention), else float32
    backend.dtype = torch.bfloat16 if args.dtype is None and backend.device.type == "cuda" else torch_dtype(
        args.dtype, backend.device.type)
    backend.gradient_checkpointing, backend.offload = args.gradient_checkpointing, args.offload
    # the key-frame fields, as configure() sets them from the VAE's and transformer's configs
    backend.temporal_factor, backend.size_multiple = 4, 8 * 2
    frames, width, height = SIZES[args.size]
    backend.num_frames = args.frames or frames
    check_frame_count(backend.num_frames, backend.temporal_factor)
    backend.set_keyframe_size(width, height)
    backend._info = {"keyframes": {"id": "random weights (Wan2.1-T2V-1.3B layout)", "revision": "random"}}
    build_on = "cpu" if args.offload else device  # offloaded parts are built (and kept) in CPU memory
    transformer = random_model(lambda: WanTransformer3DModel(**transformer_config(args.size)), device, backend.dtype)
    # the VAE in float32, as load() keeps it
    vae = random_model(lambda: AutoencoderKLWan(**vae_config(args.size)), build_on, torch.float32)
    encoder = direct_model(lambda: UMT5EncoderModel(UMT5Config(**text_config(args.size))), build_on, backend.dtype)
    backend.use_parts(transformer, vae, encoder, tiny_tokenizer(512), SCHEDULER, backend.dtype)
    added = backend.add_lora(rank=args.rank)
    counts = {"transformer": sum(p.numel() for n, p in transformer.named_parameters() if "lora_" not in n),
              "lora": sum(transformer.get_parameter(n).numel() for n in added),
              "vae": sum(p.numel() for p in vae.parameters()), "text_encoder": sum(p.numel() for p in encoder.parameters())}
    return backend, counts


def bench(args) -> tuple[dict, list[str]]:
    from vmc_cli.method.pipeline import MotionPipeline
    from vmc_cli.method.tuning import TuneConfig, tune
    from vmc_wan.backend import LORA_TARGET

    device = "cuda" if torch.cuda.is_available() else "cpu"

    (backend, counts), build_s, build_peak = wall(lambda: build(args, device))
    frames, width, height = backend.num_frames, backend.width, backend.height
    result = {"backbone": "wan", "size": args.size, "dtype": str(backend.dtype).replace("torch.", ""),
              "gradient_checkpointing": args.gradient_checkpointing, "offload": args.offload, "lora_rank": args.rank,
              "keyframes": [frames, width, height], "parameters": counts, "build_s": build_s,
              "build_peak_gib": build_peak, "resident_gib": allocated_gib()}
    failed: list[str] = []
    clip = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)

    # -- text (every prompt once, then the encoder goes, as vmc tune and vmc generate do) --------
    text, result["text_s"], result["text_peak_gib"] = wall(lambda: backend.encode_prompts([PROMPT, ""]))
    prompt = text[:1]
    backend.release_text_encoder()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    result["resident_after_text_gib"] = allocated_gib()

    z, result["encode_s"], result["encode_peak_gib"] = wall(lambda: backend.frames_to_model(clip))
    want = (1, 16, backend.latent_frames(frames), height // 8, width // 8)
    if tuple(z.shape) != want:
        failed.append(f"latent clip shape {tuple(z.shape)}, not {want}")

    # -- tuning -------------------------------------------------------------------------------
    lora = lora_names(backend)
    before = {n: p.detach().to("cpu", copy=True) for n, p in backend.unet.named_parameters()}
    peak_reset()
    losses = []

    def run_tune(mark):
        config = TuneConfig(steps=args.steps, lr=1e-4, target=LORA_TARGET)
        losses.extend(tune(backend, z, prompt, config, on_step=mark)["losses"])

    per_step = statistics.median(timed_steps(run_tune, args.steps))
    result.update(tune_s_per_step=round(per_step, 4), tune_400_steps_s=round(400 * per_step, 1),
                  tune_peak_gib=peak_gib())
    if not all(np.isfinite(losses)):
        failed.append(f"tuning losses {losses}")
    changed = {n for n, p in backend.unet.named_parameters() if not torch.equal(p.detach().cpu(), before[n])}
    wrong = sorted(changed - lora)
    if wrong or not changed:
        failed.append(f"tuning changed {len(wrong)} parameters outside the LoRA adapters ({wrong[:3]})"
                      if wrong else "tuning changed nothing")
    result["lora_parameters_changed"] = f"{len(changed & lora)} of {len(lora)}"
    del before

    # -- inversion, sampling, decoding -----------------------------------------------------------
    holder = {}
    for part in ("inversion", "sampling"):
        peak_reset()

        def run(mark, part=part):
            pipeline = MotionPipeline(backend, progress=Marker(mark))
            if part == "inversion":
                holder[part] = pipeline.invert(z, args.sample_steps)
            else:
                holder[part] = pipeline.keyframes(holder["inversion"], PROMPT, steps=args.sample_steps,
                                                  guidance=backend.defaults["guidance"],
                                                  negative_prompt=backend.defaults["negative_prompt"])

        per_step = statistics.median(timed_steps(run, args.sample_steps))
        result[f"{part}_s_per_step"] = round(per_step, 4)
        result[f"{part}_50_steps_s"] = round(50 * per_step, 1)
        result[f"{part}_peak_gib"] = peak_gib()
        if not bool(torch.isfinite(holder[part]).all()):
            failed.append(f"{part} is not finite")
    video, result["decode_s"], result["decode_peak_gib"] = wall(lambda: backend.model_to_frames(holder["sampling"]))
    if video.shape != (frames, height, width, 3):
        failed.append(f"decoded shape {video.shape}, not {(frames, height, width, 3)}")
    result["generate_s"] = round(result["inversion_50_steps_s"] + result["sampling_50_steps_s"] + result["decode_s"], 1)
    result["checks"] = "passed" if not failed else failed
    return result, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "reduced"), default=None,
                    help="full on a GPU, reduced (a self-check at small widths) on a CPU by default")
    ap.add_argument("--steps", type=int, default=6, help="tuning steps to time (the first is a warm-up)")
    ap.add_argument("--sample-steps", type=int, default=10, help="inversion and sampling steps to time")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on a CPU")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="as VMC_WAN_GRADIENT_CHECKPOINTING=1")
    ap.add_argument("--offload", action="store_true", help="as VMC_WAN_OFFLOAD=1")
    ap.add_argument("--frames", type=int, default=None,
                    help="key-frames, 4k+1 (default 33 at full size, 5 reduced; 832x480 and 64x64)")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (the lora_rank option's default)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-wan[-reduced].json)")
    args = ap.parse_args()
    if args.steps < 2 or args.sample_steps < 2:
        ap.error("--steps and --sample-steps must be at least 2 (the first step is a warm-up)")
    if args.rank < 1:
        ap.error("--rank must be at least 1")
    if args.frames is not None and (args.frames < 1 or (args.frames - 1) % 4):
        ap.error(f"--frames must be 4k+1 (1, 5, 9, ..., 33, ..., 81), not {args.frames}")
    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    args.size = args.size or ("full" if torch.cuda.is_available() else "reduced")
    report = {"device": device_name, "torch": torch.__version__,
              "command": shlex.join(["python", "benchmarks/wan_gpu.py", *sys.argv[1:]]), "backbones": {}}
    result, failed = bench(args)
    report["backbones"]["wan"] = result
    c = result["parameters"]
    print(f"wan: {device_name}, {args.size} size, {result['dtype']}, key-frames "
          f"{result['keyframes'][0]}x{result['keyframes'][1]}x{result['keyframes'][2]}, transformer "
          f"{c['transformer'] / 1e6:.1f} M (LoRA rank {args.rank} {c['lora'] / 1e6:.2f} M), VAE {c['vae'] / 1e6:.1f} M, "
          f"text {c['text_encoder'] / 1e6:.1f} M; checkpointing={args.gradient_checkpointing}, offload={args.offload}")
    print(f"  {'part':<18}{'s/step':>10}{'projected':>12}{'s':>9}{'peak GiB':>10}")
    for label, key in (("build", "build"), ("text encoding", "text"), ("VAE encode", "encode")):
        print(f"  {label:<18}{'':>10}{'once':>12}{result[f'{key}_s']:>9.2f}{str(result[f'{key}_peak_gib']):>10}")
    for label, key, steps in (("tuning", "tune", 400), ("inversion", "inversion", 50), ("sampling", "sampling", 50)):
        total = result[f"{key}_400_steps_s" if key == "tune" else f"{key}_50_steps_s"]
        print(f"  {label:<18}{result[f'{key}_s_per_step']:>10.4f}{f'{steps} steps':>12}{total:>9.1f}"
              f"{str(result[f'{key}_peak_gib']):>10}")
    print(f"  {'VAE decode':<18}{'':>10}{'once':>12}{result['decode_s']:>9.2f}{str(result['decode_peak_gib']):>10}")
    print(f"  resident after building {result['resident_gib']} GiB, after releasing the text encoder "
          f"{result['resident_after_text_gib']} GiB; LoRA parameters changed: {result['lora_parameters_changed']}")
    print(f"  generation (50 + 50 steps and decoding): {result['generate_s']} s; checks: "
          f"{'passed' if not failed else '; '.join(failed)}")
    write_report(report, args.out, device_name, "wan", args.size)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
