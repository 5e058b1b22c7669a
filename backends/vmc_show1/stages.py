"""The frozen later stages of the Show-1 cascade, as functions of already loaded models.

Written independently (no Show-1 code copied; its CC BY-NC license) from the Show-1
paper, the model cards and the settings of its published inference script: the pixel
stages reuse diffusers' schedulers, the IF-II first frame uses diffusers'
``IFSuperResolutionPipeline`` and the latent refinement diffusers' ``VideoToVideoSDPipeline``.

Video tensors are (batch, channels, frames, height, width), pixels in [-1, 1];
frames on disk are uint8 (frames, height, width, 3). Text embeddings are the
key-frame model's T5 states, (1, tokens, dim). Every function runs where its
inputs and models are (the caller places them) and takes explicit settings.

Stage settings (Show-1's; see ``backend.STAGE_SETTINGS``):

- interpolation 8 -> 29 frames (show-1-interpolation): input noisy 3 + blend 3 + mask 1,
  75 steps, guidance 4.0, the same initial noise for every pair;
- sr1, first frame (IF-II-L, 2D): input noisy 3 + upsampled 3, 70 steps, guidance 4.0,
  noise level 150;
- sr1, windows of 8 frames overlapping by 1 (show-1-sr1): input noisy 3 + upsampled 3,
  125 steps, guidance 7.0, noise level 250 (the class label);
- sr2, 576x320 latent video-to-video (show-1-sr2): 50 steps at strength 0.8 (40 run),
  guidance 15.0, negative prompt "low resolution, blur".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vmc_cli.progress import SILENT, Reporter
from vmc_cli.models.quiet import no_progress_bars, quiet_libraries  # noqa: F401 (backend.py uses both from here)

from .schedulers import step_parameters


def fold(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B*F, C, H, W), frame index fastest."""
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def unfold(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*F, C, H, W) -> (B, C, F, H, W)."""
    bf, c, h, w = x.shape
    return x.reshape(batch, bf // batch, c, h, w).permute(0, 2, 1, 3, 4)


def _randn(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Seeded CPU noise (the same on every device), moved next to ``like``."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


@torch.no_grad()
def denoise_pixels(unet, scheduler, noise: torch.Tensor, cond: torch.Tensor, text: torch.Tensor,
                   uncond: torch.Tensor, *, steps: int, guidance: float, class_labels: torch.Tensor | None = None,
                   generator: torch.Generator | None = None, progress: Reporter = SILENT,
                   label: str = "denoising") -> torch.Tensor:
    """Sample a pixel video with a conditioned Show-1 UNet.

    ``noise`` (B, C, F, H, W) is the starting noise; ``cond`` (B, C', F, H, W) is
    concatenated to the noisy frames on the channel axis at every step. Classifier-free
    guidance mixes the first C output channels (epsilon); the learned-variance channels
    that follow are taken from the text branch and handed to the scheduler only when its
    ``variance_type`` is learned. Frames are folded into the batch for the scheduler step,
    so dynamic thresholding acts per frame.
    """
    from vmc_cli.method.sampling import guided

    scheduler.set_timesteps(steps, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    b, c = x.shape[:2]

    def predict_batched(x, t, emb):  # x may be the guided double batch: repeat cond and labels to match
        rows = x.shape[0] // b
        inp = scheduler.scale_model_input(torch.cat([x, cond.repeat(rows, 1, 1, 1, 1)], dim=1), t[0])
        labels = None if class_labels is None else class_labels.repeat(rows)
        return unet(inp, t[0], encoder_hidden_states=emb, class_labels=labels).sample

    # the core's classifier-free guidance (unconditional rows first, as Show-1 batches them) on the
    # epsilon channels; the learned-variance channels come from the text branch. No guidance at
    # or below 1 (a single text pass), as Show-1's script does.
    predict = guided(predict_batched, text, uncond if guidance > 1.0 else None, guidance,
                     uncond_first=True, channels=c)
    learned = scheduler.config.get("variance_type") in ("learned", "learned_range")
    # the seeded generator reaches a stochastic scheduler (DDPM) through the float32 wrapper
    extra = {"generator": generator} if "generator" in step_parameters(scheduler) else {}
    for t in progress.track(scheduler.timesteps, label):
        out = predict(x, t.expand(b))
        model_out = out if learned and out.shape[1] > c else out[:, :c]
        x = unfold(scheduler.step(fold(model_out), t, fold(x), **extra).prev_sample, b)
    return x


def interpolate(unet, scheduler, keyframes: torch.Tensor, text: torch.Tensor, uncond: torch.Tensor, *,
                steps: int, guidance: float, seed: int, pairs_per_batch: int = 7,
                progress: Reporter = SILENT) -> torch.Tensor:
    """(B, C, K, h, w) key-frames -> (B, C, 4(K-1)+1, h, w): 3 new frames between each pair.

    Each pair of neighbouring key-frames becomes a 5-frame clip whose two ends are known.
    The UNet sees noisy frames (3), the linear blend of the two ends over the 5 frames (3)
    and a mask that is 1 on the two known frames (1): 7 input channels. All pairs start
    from the SAME noise (one draw from ``seed``) and are sampled in batches of
    ``pairs_per_batch``. The 5 frames of each pair are written in order, so a key-frame
    shared by two pairs is the one the later pair generated.
    """
    b, c, k, h, w = keyframes.shape
    pairs = k - 1
    if pairs < 1:
        return keyframes
    first = fold(keyframes[:, :, :-1].contiguous())  # (B*P, C, h, w), pair index fastest
    last = fold(keyframes[:, :, 1:].contiguous())
    weight = torch.linspace(0, 1, 5, device=keyframes.device).view(1, 1, 5, 1, 1)
    blend = (first.float()[:, :, None] * (1 - weight) + last.float()[:, :, None] * weight).to(keyframes.dtype)
    mask = torch.zeros_like(blend[:, :1])
    mask[:, :, [0, -1]] = 1
    cond = torch.cat([blend, mask], dim=1)  # (B*P, 4, 5, h, w)
    generator = torch.Generator("cpu").manual_seed(seed)
    noise = _randn((b, c, 5, h, w), generator, keyframes).repeat_interleave(pairs, dim=0)
    segments = []
    n = max(1, pairs_per_batch)
    for start in range(0, b * pairs, n):
        sl = slice(start, start + n)
        segments.append(denoise_pixels(unet, scheduler, noise[sl], cond[sl], text, uncond, steps=steps,
                                       guidance=guidance, generator=generator, progress=progress,
                                       label=f"interpolation {start // n + 1}/{-(-b * pairs // n)}"))
    seg = torch.cat(segments).reshape(b, pairs, c, 5, h, w)
    out = keyframes.new_zeros((b, c, 4 * pairs + 1, h, w))
    for i in range(pairs):  # pair i writes frames 4i..4i+4: together every frame, key-frames included
        out[:, :, 4 * i:4 * i + 5] = seg[:, i]
    return out


@torch.no_grad()
def super_resolve_first_frame(unet, scheduler, noising_scheduler, frame: torch.Tensor, text: torch.Tensor,
                              uncond: torch.Tensor, *, size: tuple[int, int], steps: int, guidance: float,
                              noise_level: int, seed: int, progress: Reporter = SILENT) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, H, W) with DeepFloyd IF-II (diffusers' ``IFSuperResolutionPipeline``,
    no safety checker or watermark: the ``pt`` output path). ``size`` is (width, height)."""
    with quiet_libraries():
        from diffusers import IFSuperResolutionPipeline

    width, height = size
    pipe = IFSuperResolutionPipeline(tokenizer=None, text_encoder=None, unet=unet, scheduler=scheduler,
                                     image_noising_scheduler=noising_scheduler, safety_checker=None,
                                     feature_extractor=None, watermarker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    task = progress.task("super-resolution 1, first frame", steps)
    return pipe(image=frame.to(unet.dtype), prompt_embeds=text, negative_prompt_embeds=uncond, height=height,
                width=width, num_inference_steps=steps, guidance_scale=guidance, noise_level=noise_level,
                generator=torch.Generator("cpu").manual_seed(seed), output_type="pt",
                callback=lambda *_: task.advance(), callback_steps=1).images


def windows(frames: int, window: int, stride: int) -> list[int]:
    """Start indexes of windows of ``window`` frames every ``stride`` frames that cover
    ``frames`` (29 frames, 8, 7 -> 0, 7, 14, 21); the last one is moved back if needed."""
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, stride))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return starts


@torch.no_grad()
def super_resolve(unet, scheduler, noising_scheduler, video: torch.Tensor, first_frame: torch.Tensor,
                  text: torch.Tensor, uncond: torch.Tensor, *, size: tuple[int, int], steps: int, guidance: float,
                  noise_level: int, window: int, stride: int, seed: int,
                  progress: Reporter = SILENT) -> torch.Tensor:
    """(B, C, F, h, w) -> (B, C, F, H, W), ``size`` = (W, H), in windows of ``window`` frames.

    Per window: the frames are upsampled bilinearly (align_corners) to (H, W) and noised to
    ``noise_level`` with ``noising_scheduler``; that level is the UNet's class label. The
    first frame's conditioning is replaced by a clean high-resolution frame: ``first_frame``
    (IF-II's output) for the first window, the previous window's output for the others
    (windows overlap by ``window - stride`` frames). Input channels: noisy 3 + conditioning 3.
    Every window draws its noise from the same ``seed``.
    """
    b, c, n, _, _ = video.shape
    width, height = size
    out = video.new_zeros((b, c, n, height, width))
    starts = windows(n, window, stride)
    for i, s in enumerate(starts):
        clip = video[:, :, s:s + window]
        f = clip.shape[2]
        generator = torch.Generator("cpu").manual_seed(seed)
        noise = _randn((b, c, f, height, width), generator, video)
        up = F.interpolate(fold(clip).float(), size=(height, width), mode="bilinear", align_corners=True)
        up = unfold(up, b).to(video.dtype)
        levels = torch.full((b,), int(noise_level), device=video.device, dtype=torch.long)
        up = noising_scheduler.add_noise(up, _randn(up.shape, generator, up), levels)
        up[:, :, 0] = first_frame if i == 0 else out[:, :, s]
        out[:, :, s:s + f] = denoise_pixels(unet, scheduler, noise, up, text, uncond, steps=steps, guidance=guidance,
                                            class_labels=levels, generator=generator, progress=progress,
                                            label=f"super-resolution 1, window {i + 1}/{len(starts)}")
    return out


@torch.no_grad()
def refine(vae, text_encoder, tokenizer, unet, scheduler, frames: np.ndarray, prompt: str, negative_prompt: str, *,
           size: tuple[int, int], steps: int, guidance: float, strength: float, seed: int,
           progress: Reporter = SILENT) -> np.ndarray:
    """uint8 (F, h, w, 3) -> uint8 (F, H, W, 3): bicubic resize to ``size`` = (W, H), then
    video-to-video refinement with the latent sr2 model (diffusers' ``VideoToVideoSDPipeline``:
    VAE-encode, noise to ``strength``, ``int(steps * strength)`` denoising steps with its own
    CLIP text encoder, VAE-decode with slicing)."""
    from diffusers import VideoToVideoSDPipeline
    from PIL import Image

    width, height = size
    video = [Image.fromarray(f).resize((width, height), Image.BICUBIC) for f in frames]
    with quiet_libraries():
        pipe = VideoToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                      scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    vae.enable_slicing()
    task = progress.task("super-resolution 2", max(1, min(steps, int(steps * strength))))
    out = pipe(prompt=prompt, negative_prompt=negative_prompt or None, video=video, strength=strength,
               num_inference_steps=steps, guidance_scale=guidance,
               generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
               callback=lambda *_: task.advance(), callback_steps=1).frames
    return (np.clip(np.asarray(out[0], dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)
