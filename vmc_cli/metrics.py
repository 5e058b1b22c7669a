"""The paper's automatic metrics, computed with CLIP (VMC, Table 1).

Both are taken on the key-frames of the interpolated output (for 29 frames
from 8 key-frames: 0-based indexes 0, 4, ..., 28, the paper's 1, 5, ..., 29):

- text alignment: mean over frames of the cosine similarity between the
  prompt's CLIP text embedding and the frame's CLIP image embedding;
- temporal consistency: mean cosine similarity between the CLIP image
  embeddings of all unordered pairs of frames (i < j).

torch and transformers are imported inside the functions that need them, so
importing this module stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from vmc_cli.errors import VmcError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "keyframe_indexes",
    "load_clip",
    "clip_scores",
    "text_alignment",
    "temporal_consistency",
]

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"

_IMAGE_BATCH = 16


def keyframe_indexes(num_frames: int, num_keyframes: int) -> list[int]:
    """0-based indexes of the key-frames inside an interpolated video.

    Key-frames are evenly spaced with step ``(num_frames - 1) / (num_keyframes - 1)``,
    which must be a whole number: 29 frames from 8 key-frames -> 0, 4, ..., 28.
    """
    num_frames = int(num_frames)
    num_keyframes = int(num_keyframes)
    if num_frames < 1 or num_keyframes < 1:
        raise VmcError(
            f"Frame counts must be positive (got {num_frames} frames, {num_keyframes} key-frames)."
        )
    if num_keyframes > num_frames:
        raise VmcError(
            f"Cannot pick {num_keyframes} key-frames from a video of {num_frames} frames.",
            hint="The number of key-frames must not exceed the number of frames.",
        )
    if num_keyframes == 1:
        if num_frames != 1:
            raise VmcError(
                f"One key-frame cannot be evenly spaced in {num_frames} frames.",
                hint="Use at least 2 key-frames.",
            )
        return [0]
    step, rem = divmod(num_frames - 1, num_keyframes - 1)
    if rem:
        raise VmcError(
            f"{num_keyframes} key-frames are not evenly spaced in {num_frames} frames: "
            f"(frames - 1) / (key-frames - 1) = {num_frames - 1}/{num_keyframes - 1} is not a whole number.",
            hint="Interpolated videos have (key-frames - 1) * k + 1 frames, e.g. 29 frames for 8 key-frames.",
        )
    return [i * step for i in range(num_keyframes)]


def _is_local(model: str) -> bool:
    """A path rather than a hub id ("owner/name")."""
    return (
        os.path.isdir(model)
        or model.startswith((".", "/", "~"))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
    )


def load_clip(model: str, device: str = "cpu") -> tuple[Any, Any]:
    """Load a CLIP model and its processor from a hub id or a local folder.

    Returns ``(model, processor)`` with the model in eval mode on ``device``.
    Missing weights (offline, never downloaded, wrong folder) raise
    :class:`VmcError` with a hint saying how to get them.
    """
    model = str(model)
    expanded = os.path.expanduser(model)
    if _is_local(model) and not os.path.isdir(expanded):
        raise VmcError(
            f"CLIP model folder not found: {model}",
            hint=f"Pass --clip-model with a folder holding a saved CLIP model, or a hub id "
            f"such as {DEFAULT_CLIP_MODEL}.",
        )
    source = expanded if os.path.isdir(expanded) else model

    from transformers import CLIPModel, CLIPProcessor

    from .hub import load_cached_first

    try:
        processor = load_cached_first(CLIPProcessor.from_pretrained, source)
        clip = load_cached_first(CLIPModel.from_pretrained, source)
    except (OSError, ValueError, KeyError) as exc:  # missing files, offline hub, bad folder
        if os.path.isdir(expanded):
            hint = (
                f"The folder must hold a CLIP model saved with save_pretrained "
                f"(config.json, weights, tokenizer and preprocessor files) [{type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}]"
            )
        else:
            hint = (
                f"Download it first with: hf download {model}   "
                f"(or pass --clip-model with a local folder)"
            )
        raise VmcError(f"Could not load CLIP model '{model}'.", hint=hint) from exc

    try:
        clip = clip.to(device)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise VmcError(
            f"Cannot move the CLIP model to device '{device}': {str(exc).splitlines()[0]}",
            hint="Use --device cpu, or a device this machine has.",
        ) from exc
    clip.eval()
    return clip, processor


def _features(out: Any, attr: str) -> "torch.Tensor":
    """get_*_features returns a tensor, or (transformers 5.x) a model output."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    value = getattr(out, attr, None)
    if isinstance(value, torch.Tensor):
        return value
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"Unexpected CLIP feature output: {type(out).__name__}")


def _normalize(x: "torch.Tensor") -> "torch.Tensor":
    import torch

    x = x.to(torch.float64)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def text_alignment(text_emb: "torch.Tensor", image_embs: "torch.Tensor") -> float:
    """Mean cosine similarity between one text embedding and each image embedding.

    ``text_emb``: shape (d,) or (1, d); ``image_embs``: shape (n, d).  The
    embeddings need not be normalised.
    """
    t = _normalize(text_emb.reshape(1, -1))
    im = _normalize(image_embs if image_embs.ndim == 2 else image_embs.reshape(1, -1))
    if im.shape[0] == 0:
        raise ValueError("text_alignment needs at least one image embedding")
    if im.shape[1] != t.shape[1]:
        raise ValueError(f"embedding sizes differ: text {t.shape[1]}, images {im.shape[1]}")
    return float((im @ t[0]).mean())


def temporal_consistency(image_embs: "torch.Tensor") -> float:
    """Mean cosine similarity over all unordered pairs (i < j) of image embeddings."""
    import torch

    if image_embs.ndim != 2 or image_embs.shape[0] < 2:
        raise ValueError("temporal_consistency needs an (n, d) tensor with n >= 2")
    e = _normalize(image_embs)
    sims = e @ e.T
    i, j = torch.triu_indices(e.shape[0], e.shape[0], offset=1)
    return float(sims[i, j].mean())


def clip_scores(
    frames: "np.ndarray",
    prompt: str,
    model: str | tuple = DEFAULT_CLIP_MODEL,
    device: str = "cpu",
) -> dict:
    """CLIP text alignment and temporal consistency of ``frames``.

    ``frames``: uint8 array (frames, height, width, 3), already restricted to
    the frames to score (see :func:`keyframe_indexes`).  ``model``: a hub id,
    a local folder, or an already loaded ``(model, processor)`` tuple.
    Returns ``{"text_alignment": float, "temporal_consistency": float, "frames": int}``.
    """
    import numpy as np

    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise VmcError(
            f"Expected frames shaped (frames, height, width, 3), got {tuple(arr.shape)}."
        )
    if arr.shape[0] < 2:
        raise VmcError(
            f"Temporal consistency needs at least 2 frames, got {arr.shape[0]}."
        )
    if arr.dtype != np.uint8:
        raise VmcError(f"Expected uint8 frames, got {arr.dtype}.")

    import torch

    if isinstance(model, tuple):
        clip, processor = model
    else:
        clip, processor = load_clip(model, device)
    param = next(clip.parameters())
    dev, dtype = param.device, param.dtype

    with torch.no_grad():
        text_in = processor(text=[prompt], return_tensors="pt", padding=True, truncation=True)
        text_in = {k: v.to(dev) for k, v in text_in.items() if k in ("input_ids", "attention_mask")}
        text_emb = _features(clip.get_text_features(**text_in), "text_embeds")[0]

        image_embs = []
        for start in range(0, arr.shape[0], _IMAGE_BATCH):
            batch = [arr[k] for k in range(start, min(start + _IMAGE_BATCH, arr.shape[0]))]
            pix = processor(images=batch, return_tensors="pt")["pixel_values"].to(dev, dtype)
            image_embs.append(_features(clip.get_image_features(pixel_values=pix), "image_embeds"))
        image_embs = torch.cat(image_embs, dim=0)

    return {
        "text_alignment": text_alignment(text_emb.float().cpu(), image_embs.float().cpu()),
        "temporal_consistency": temporal_consistency(image_embs.float().cpu()),
        "frames": int(arr.shape[0]),
    }
