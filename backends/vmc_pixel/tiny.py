"""A tiny pixel-space cascade with the same shape as a real one, random weights from a fixed seed.

- key-frames: a diffusers ``UNet3DConditionModel`` (temporal attention in
  ``temp_attentions``) on 8 frames of 64x40 pixels in [-1, 1], epsilon
  prediction, cosine noise schedule;
- text: a small CLIP text encoder and a hashing word tokenizer, made offline;
- interpolation: 8 -> 29 frames, 3 new frames between each pair, conditioned
  on the pair and a mask (7 input channels), shared initial noise across pairs;
- upscaling: 1.5x (to 96x60), conditioned on the bilinearly upsampled frames (6 input channels).

The later stages start from a noised version of their deterministic
baseline (linear blend, bilinear upsampling) at ``strength``, as in
video-to-video refinement, so that their output stays close to its input
even with random weights.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib

import torch
import torch.nn.functional as F

from vmc_cli.backend import Backend
from vmc_cli.errors import VmcError
from vmc_cli.progress import SILENT

SEED = 0

UNET = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    down_block_types=("DownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D"),
    up_block_types=("CrossAttnUpBlock3D", "UpBlock3D", "UpBlock3D"),
    block_out_channels=(32, 32, 64),
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=32,
)
TEXT = dict(
    vocab_size=1024,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=16,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_schedule="squaredcos_cap_v2",
    prediction_type="epsilon",
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=0,
)
STAGES = {
    # name: (extra input channels, steps, guidance, strength)
    # baseline: "blend" (cross-fade of the two key-frames) or "motion" (both key-frames
    # shifted toward the in-between time along their phase-correlation shift, then blended)
    "interpolation": dict(in_channels=7, steps=3, guidance=2.0, strength=0.6, baseline="blend"),
    "upscale": dict(in_channels=6, steps=2, guidance=1.0, strength=0.5, scale=1.5),
}


def _revision(*parts) -> str:
    blob = json.dumps([SEED, *parts], sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class HashTokenizer:
    """Lower-cased words and punctuation, each mapped to an id by CRC32 (no vocabulary file)."""

    def __init__(self, vocab_size: int, max_length: int, pad: int = 0, bos: int = 1, eos: int = 2):
        self.vocab_size, self.max_length = vocab_size, max_length
        self.pad, self.bos, self.eos = pad, bos, eos

    def token_ids(self, text: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())
        ids = [3 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in words]
        ids = [self.bos, *ids[: self.max_length - 2], self.eos]
        return ids + [self.pad] * (self.max_length - len(ids))

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([self.token_ids(t) for t in texts], dtype=torch.long)


def _build_unet(in_channels: int, seed: int):
    from diffusers import UNet3DConditionModel

    torch.manual_seed(seed)
    return UNet3DConditionModel(**{**UNET, "in_channels": in_channels}).eval()


class SmallTextModel:
    """The key-frame model and prompt cache shared by the small built-in backends: a
    ``_unet``, a CLIP ``_text_encoder`` over a ``_tokenizer`` (embeddings cached per prompt by
    the core)."""

    @property
    def unet(self):
        if self._unet is None:
            raise RuntimeError("call load() first")
        return self._unet

    def encode_text(self, prompts):
        """The CLIP states (the core's :meth:`Backend.encode_prompts` caches them per prompt)."""
        return self._text_encoder(input_ids=self._tokenizer(prompts).to(self.device)).last_hidden_state


def phase_shift(first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """(pairs, 2) float shift (dx, dy) in pixels that best carries ``first`` onto ``last``
    ((pairs, C, h, w) each), by phase correlation of the mean-removed channel sums
    (whole pixels; shifts past half the frame wrap to negative)."""
    a = first.float().sum(1)
    b = last.float().sum(1)
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    cross = torch.fft.fft2(b) * torch.fft.fft2(a).conj()
    corr = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-8)).real  # (pairs, h, w)
    h, w = corr.shape[-2:]
    peak = corr.flatten(1).argmax(1)
    dy, dx = peak // w, peak % w
    dy = torch.where(dy > h // 2, dy - h, dy)
    dx = torch.where(dx > w // 2, dx - w, dx)
    return torch.stack([dx, dy], 1).float()


def _shift(frames: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``frames`` (n, C, h, w) moved by ``shift`` (n, 2) pixels (bilinear, edges repeated)."""
    n, _, h, w = frames.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=frames.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta, (n, 1, h, w), align_corners=False)
    return F.grid_sample(frames.float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=False).to(frames.dtype)


def motion_inbetweens(first: torch.Tensor, last: torch.Tensor, n: int) -> torch.Tensor:
    """(pairs, C, n, h, w): ``n`` frames from ``first`` to ``last`` ((pairs, C, h, w)), the
    two ends exact.  Frame k at time w = k / (n - 1) blends ``first`` moved by w * d and
    ``last`` moved back by (1 - w) * d, weights 1 - w and w, where d is the pair's
    phase-correlation shift: a single moving object travels instead of cross-fading."""
    d = phase_shift(first, last)
    out = []
    for k in range(n):
        w = k / (n - 1)
        out.append(_shift(first, w * d) * (1 - w) + _shift(last, -(1 - w) * d) * w)
    return torch.stack(out, 2)


def _weights_config(name: str) -> dict:
    """A stage's settings as they were before the in-between baseline became a setting
    (so the revisions recorded in existing profiles stay the same)."""
    return {k: v for k, v in STAGES[name].items() if k != "baseline"}


class TinyBackend(SmallTextModel, Backend):
    #: ``vmc export --format lora``: keys ``unet.<module>.lora_A.weight`` (the SVD of W - W0)
    lora_prefix = "unet"
    num_frames = 8
    width, height = 64, 40
    fps = 8.0
    cascade_stages = ("interpolation", "upscale")

    def __init__(self, stage_settings: dict | None = None):
        #: per-stage settings (``STAGES``); another backend that borrows this cascade may
        #: pass lower strengths
        self.stage_settings = {name: {**cfg, **(stage_settings or {}).get(name, {})} for name, cfg in STAGES.items()}
        self._unet = None
        self._stages: dict[str, torch.nn.Module] = {}
        self._text_encoder = None
        self._tokenizer = HashTokenizer(TEXT["vocab_size"], TEXT["max_position_embeddings"])
        self._embeddings: dict[str, torch.Tensor] = {}
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    # -- loading -----------------------------------------------------------
    def configure(self, *, model_path=None, progress=None, **options) -> None:
        if model_path:
            raise VmcError("the tiny backend has no model files to load", "drop --model-path")

    def load_models(self, stages, progress=None) -> None:
        if "keyframes" in stages and self._unet is None:
            from transformers import CLIPTextConfig, CLIPTextModel

            self._unet = self._place(_build_unet(3, SEED))
            torch.manual_seed(SEED + 1)
            self._text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT)).eval().to(self.device)
        for i, name in enumerate(self.cascade_stages):
            if name in stages and name not in self._stages:
                unet = _build_unet(STAGES[name]["in_channels"], SEED + 10 + i)
                self._stages[name] = self._place(unet)
        if any(s in stages for s in self.cascade_stages) and self._text_encoder is None:
            from transformers import CLIPTextConfig, CLIPTextModel

            torch.manual_seed(SEED + 1)
            self._text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT)).eval().to(self.device)

    def _place(self, module):
        module = module.to(self.device)
        return module if self.dtype == torch.float32 else module.to(self.dtype)

    def model_info(self):
        info = {
            "keyframes": {"id": "vmc-tiny/keyframes", "revision": _revision(UNET, TEXT, SCHEDULER)},
        }
        for name in self.cascade_stages:
            info[name] = {"id": f"vmc-tiny/{name}", "revision": _revision(UNET, TEXT, _weights_config(name))}
        return info

    # -- key-frame model ---------------------------------------------------
    def predict_noise(self, x, t, text):
        return self.unet(x.to(self.dtype), t, encoder_hidden_states=text).sample

    def noise_scheduler_config(self):
        return {"_class_name": "DDPMScheduler", **SCHEDULER}

    # -- clips ---------------------------------------------------------------
    # -- cascade -------------------------------------------------------------
    def _denoise(self, unet, baseline, cond, text, uncond, steps, guidance, strength, generator, label, progress):
        """Video-to-video denoising from ``baseline`` noised to ``strength`` with vmc's own
        guided DDIM sampler; ``cond`` is concatenated to the input channels. Noise is shared
        across the batch."""
        from diffusers import DDIMScheduler

        from vmc_cli.method.sampling import ddim_sample, guided, start_noised

        sched = DDIMScheduler.from_config(self.noise_scheduler_config())
        noise = torch.randn((1, *baseline.shape[1:]), generator=generator, device="cpu")
        noise = noise.to(baseline.device, baseline.dtype).expand_as(baseline)
        x, start = start_noised(sched, baseline, noise, steps, strength)

        def predict(x, t, emb):  # x may be the guided double batch: repeat cond to match
            inp = torch.cat([x, cond.repeat(x.shape[0] // cond.shape[0], 1, 1, 1, 1)], dim=1)
            return unet(inp, t.to(self.device), encoder_hidden_states=emb).sample

        return ddim_sample(guided(predict, text, uncond, guidance), sched, x, steps, progress, label,
                           start_timestep=start)

    @torch.no_grad()
    def run_cascade(self, keyframes, prompt, *, negative_prompt="", seed=0, stages=None, progress=None):
        progress = progress or SILENT
        stages = self.cascade_stages if stages is None else stages
        missing = [s for s in stages if s not in self._stages]
        if missing:
            raise RuntimeError(f"stages not loaded: {missing}; call load(stages=('all',)) first")
        text, uncond = self.encode_prompts([prompt, negative_prompt]).chunk(2)
        generator = torch.Generator("cpu").manual_seed(seed)
        video = keyframes.to(self.device, self.dtype)
        if "interpolation" in stages:
            video = self.interpolate(video, text, uncond, generator, progress)
        if "upscale" in stages:
            video = self.upscale(video, text, uncond, generator, progress)
        return self.model_to_frames(video)

    def interpolate(self, video, text, uncond, generator, progress=SILENT):
        """(1, 3, 8, h, w) -> (1, 3, 29, h, w): 3 new frames between each pair of key-frames."""
        cfg = self.stage_settings["interpolation"]
        k = video[0].permute(1, 0, 2, 3)  # (F, C, h, w)
        first, last = k[:-1], k[1:]  # (pairs, C, h, w)
        if cfg.get("baseline", "blend") == "motion":
            baseline = motion_inbetweens(first, last, 5)
        else:
            w = torch.linspace(0, 1, 5, device=video.device, dtype=video.dtype).view(1, 1, 5, 1, 1)
            baseline = first[:, :, None] * (1 - w) + last[:, :, None] * w  # (pairs, C, 5, h, w)
        mask = torch.zeros_like(baseline[:, :1])
        mask[:, :, [0, -1]] = 1
        cond = baseline * mask
        seg = self._denoise(self._stages["interpolation"], baseline, torch.cat([cond, mask], 1), text, uncond,
                            cfg["steps"], cfg["guidance"], cfg["strength"], generator, "interpolation", progress)
        seg = torch.where(mask.bool().expand_as(seg), baseline, seg)  # key-frames pass through unchanged
        frames = torch.cat([seg[:, :, :4].permute(0, 2, 1, 3, 4).reshape(-1, *seg.shape[1:2], *seg.shape[3:]),
                            seg[-1:, :, 4].reshape(1, *seg.shape[1:2], *seg.shape[3:])])
        return frames.permute(1, 0, 2, 3)[None]

    def upscale(self, video, text, uncond, generator, progress=SILENT):
        """(1, 3, F, h, w) -> (1, 3, F, 1.5h, 1.5w), conditioned on the bilinear upsampling."""
        cfg = self.stage_settings["upscale"]
        _, c, f, h, w = video.shape
        flat = video[0].permute(1, 0, 2, 3)
        up = F.interpolate(flat.float(), scale_factor=cfg["scale"], mode="bilinear", align_corners=False)
        up = up.to(video.dtype).permute(1, 0, 2, 3)[None]
        return self._denoise(self._stages["upscale"], up, up, text, uncond, cfg["steps"], cfg["guidance"],
                             cfg["strength"], generator, "upscale", progress)
