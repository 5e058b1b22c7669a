"""The paper's automatic metrics, computed with CLIP (VMC, Table 1).

Both are taken on the key-frames of the interpolated output (for 29 frames
from 8 key-frames: 0-based indexes 0, 4, ..., 28, the paper's 1, 5, ..., 29):

- text alignment: mean over frames of the cosine similarity between the
  prompt's CLIP text embedding and the frame's CLIP image embedding;
- temporal consistency: mean cosine similarity between the CLIP image
  embeddings of all unordered pairs of frames (i < j).

It also holds the motion fidelity score of later work (Yatim et al., "Space-Time
Diffusion Features for Zero-Shot Text-Driven Motion Transfer", CVPR 2024),
computed here with OpenCV's pyramidal Lucas-Kanade tracker instead of CoTracker:
see :func:`motion_fidelity` for the exact definition.

torch, transformers, numpy and cv2 are imported inside the functions that need
them, so importing this module stays cheap.
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
    "track_points",
    "motion_fidelity",
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
            f"Frame counts must be positive (got {num_frames} frames, {num_keyframes} key-frames).",
            hint="Pass --keyframes N with N >= 1, or leave it out to score all frames.",
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

    from vmc_cli.models.hub import load_cached_first

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
            f"Expected frames shaped (frames, height, width, 3), got {tuple(arr.shape)}.",
            hint="Pass RGB frames: a video file or a folder of images.",
        )
    if arr.shape[0] < 2:
        raise VmcError(
            f"Temporal consistency needs at least 2 frames, got {arr.shape[0]}.",
            hint="Score a video of 2 frames or more (or more --keyframes).",
        )
    if arr.dtype != np.uint8:
        raise VmcError(f"Expected uint8 frames, got {arr.dtype}.", hint="Pass 8-bit frames.")

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


# -- motion fidelity ------------------------------------------------------------
#
# Yatim et al. (CVPR 2024) track a grid of points through the source and the
# output video (CoTracker, 55x55 points), turn every track into its per-frame
# displacements normalised to unit length, and score a pair of tracks by the
# mean over time of the cosine between their displacements.  Each track of one
# video is matched to its best track in the other (max over tracks), and the
# best scores are averaged.  The paper writes the score with both directions
# (output -> source and source -> output); the released script computes only
# output -> source (and, before its max, subtracts an identity matrix from the
# similarity matrix, which pairs output track i with source track i; not done
# here).  Here both directions are reported, and ``motion_fidelity`` is their
# mean.  The details this implementation had to choose are listed in
# :func:`motion_fidelity`.

MOTION_GRID = 32
MOTION_SIZE = 128
"""Working resolution: both videos are tracked with this longer side, whatever their own
frame sizes, so that the score does not depend on them (LK's window, pyramid and
forward-backward check are in pixels)."""


def _check_motion_frames(frames: Any, what: str) -> "np.ndarray":
    import numpy as np

    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise VmcError(f"Expected {what} frames shaped (frames, height, width, 3), got {tuple(arr.shape)}.",
                       hint="Pass RGB frames: a video file or a folder of images.")
    if arr.dtype != np.uint8:
        raise VmcError(f"Expected uint8 {what} frames, got {arr.dtype}.", hint="Pass 8-bit frames.")
    if arr.shape[0] < 2:
        raise VmcError(f"Motion needs at least 2 frames; the {what} video has {arr.shape[0]}.",
                       hint="Pass videos of 2 frames or more.")
    return arr


def _lk_window(width: int, height: int) -> int:
    """Lucas-Kanade window side: 15 px for small frames, 21 px (OpenCV's default) from 160 px up."""
    return 21 if min(width, height) >= 160 else 15


def track_points(
    frames: "np.ndarray",
    grid: int | tuple[int, int] = MOTION_GRID,
    win_size: int | None = None,
    max_level: int = 3,
    fb_threshold: float | None = 1.0,
) -> tuple["np.ndarray", "np.ndarray"]:
    """Follow a regular grid of points from the first frame through all frames.

    ``frames``: uint8 (frames, height, width, 3), RGB.  ``grid``: points per
    axis (``n`` -> n x n points, or ``(rows, cols)``), placed at the centres of
    a regular grid of cells over the first frame.  Each pair of consecutive
    grayscale frames goes through OpenCV's pyramidal Lucas-Kanade
    (``cv2.calcOpticalFlowPyrLK``; window ``win_size`` px, by default 15 or 21
    by frame size, up to ``max_level`` pyramid levels while the coarsest level
    stays at least one window wide).

    A point is lost, for good, at the first step where LK reports status 0
    (this includes textureless windows, e.g. on a flat background), where it
    leaves the frame, or (unless ``fb_threshold`` is None) where tracking it
    back to the previous frame lands more than ``fb_threshold`` px away from
    where it started (forward-backward check).

    Returns ``(tracks, visible)``: float32 (points, frames, 2) positions in
    pixels (x, y; OpenCV's convention, pixel centres at integer coordinates;
    NaN once lost) and bool (points, frames).  Every point is visible in frame 0.
    """
    import cv2
    import numpy as np

    arr = _check_motion_frames(frames, "input")
    n_frames, height, width, _ = arr.shape
    rows, cols = (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must have at least one point per axis, got {grid!r}")
    xs = (np.arange(cols) + 0.5) * width / cols - 0.5
    ys = (np.arange(rows) + 0.5) * height / rows - 0.5
    start = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)

    win = int(win_size) if win_size else _lk_window(width, height)
    levels = int(np.floor(np.log2(max(min(width, height) / win, 1.0))))
    params = dict(
        winSize=(win, win),
        maxLevel=max(0, min(int(max_level), levels)),
        criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01),
    )
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in arr]

    tracks = np.full((len(start), n_frames, 2), np.nan, np.float32)
    visible = np.zeros((len(start), n_frames), bool)
    tracks[:, 0] = start
    visible[:, 0] = True
    alive = np.arange(len(start))
    for t in range(1, n_frames):
        if alive.size == 0:
            break
        p0 = np.ascontiguousarray(tracks[alive, t - 1]).reshape(-1, 1, 2)
        p1, status, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], p0, None, **params)
        p1 = p1.reshape(-1, 2)
        ok = status.reshape(-1) == 1
        if fb_threshold is not None:
            back, status_b, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t - 1], p1.reshape(-1, 1, 2), None, **params)
            ok &= status_b.reshape(-1) == 1
            ok &= np.linalg.norm(back.reshape(-1, 2) - p0.reshape(-1, 2), axis=1) <= fb_threshold
        ok &= np.isfinite(p1).all(axis=1)
        ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= width - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= height - 1)
        alive = alive[ok]
        tracks[alive, t] = p1[ok]
        visible[alive, t] = True
    return tracks, visible


def _resample_tracks(tracks: "np.ndarray", visible: "np.ndarray", n: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Tracks at ``n`` evenly spaced times from the first to the last frame (linear
    interpolation between frames; a point is visible at a time between two frames
    only when it is visible in both)."""
    import numpy as np

    n_frames = tracks.shape[1]
    if n_frames == n:
        return tracks, visible
    times = np.linspace(0.0, n_frames - 1, n)
    lo = np.clip(np.floor(times + 1e-6).astype(int), 0, n_frames - 1)
    frac = np.clip(times - lo, 0.0, 1.0)
    frac[frac < 1e-6] = 0.0
    hi = np.where(frac > 0, np.minimum(lo + 1, n_frames - 1), lo)
    pos = tracks[:, lo] * (1 - frac)[None, :, None] + tracks[:, hi] * frac[None, :, None]
    return pos.astype(np.float32), visible[:, lo] & visible[:, hi]


def _motion_features(
    tracks: "np.ndarray", visible: "np.ndarray", scale: float,
    min_motion: float, still_step: float, min_visible: float,
) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Per-step features of the moving tracks (static and short-lived ones dropped).

    Returns ``(unit, still, observed)`` for the kept tracks: float64 (tracks,
    steps, 2) unit displacement vectors (zero on still or unobserved steps),
    and float64 (tracks, steps) indicators of still steps and of observed
    steps (the point is visible at both ends of the step).
    """
    import numpy as np

    steps = tracks.shape[1] - 1
    observed = visible[:, 1:] & visible[:, :-1]
    long_enough = observed.sum(axis=1) >= max(1, int(np.ceil(min_visible * steps)))
    reach = np.linalg.norm(tracks - tracks[:, :1], axis=-1)
    reach = np.where(visible, reach, 0.0).max(axis=1)
    moving = long_enough & (reach >= min_motion * scale)

    disp = np.where(observed[..., None], tracks[:, 1:] - tracks[:, :-1], 0.0).astype(np.float64)
    length = np.linalg.norm(disp, axis=-1)
    still = observed & (length < still_step * scale)
    moves = observed & ~still
    unit = np.where(moves[..., None], disp / np.maximum(length, 1e-12)[..., None], 0.0)
    return unit[moving], still[moving].astype(np.float64), observed[moving].astype(np.float64), moving


def _resize_frames(frames: "np.ndarray", width: int, height: int) -> "np.ndarray":
    import cv2
    import numpy as np

    if frames.shape[1:3] == (height, width):
        return frames
    shrink = width * height < frames.shape[1] * frames.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(f), (width, height), interpolation=interp) for f in frames])


def motion_fidelity(
    source_frames: "np.ndarray",
    output_frames: "np.ndarray",
    *,
    grid: int = MOTION_GRID,
    size: int | None = None,
    min_motion: float = 0.01,
    still_step: float = 0.004,
    min_visible: float = 0.5,
    fb_threshold: float | None = 1.0,
    keep_tracks: bool = False,
) -> dict:
    """Motion fidelity of ``output_frames`` to ``source_frames`` (Yatim et al., CVPR 2024).

    Both inputs are uint8 (frames, height, width, 3).  The choices made here:

    - Common size: both videos are resized (area filter down, bilinear up) to
      the source's aspect ratio with the longer side ``size`` px, 128 by
      default whatever the frame sizes (tiny clips are enlarged so LK gets a
      few pyramid levels, big ones shrunk for speed), so the same motion
      scores the same at any frame size: LK's window and forward-backward
      check are in pixels of this common frame. Thresholds below are
      fractions of its longer side.
    - Tracks: :func:`track_points` with a ``grid`` x ``grid`` grid (32 x 32)
      on each video at its own frame rate (small steps track better).
    - Common time: both sets of tracks are then sampled at ``T = min(F_src,
      F_out)`` evenly spaced times from the first to the last frame (linear
      interpolation between frames).  For a 29-frame output of an 8-frame
      source these are exactly the key-frames 0, 4, ..., 28; equal lengths
      are left as they are.
    - Only moving tracks: a track is dropped when it is observed on fewer
      than ``min_visible`` (half) of the T - 1 steps, or when it never gets
      ``min_motion`` (1%) of the frame's longer side away from its start
      (static background, LK jitter).  The paper has no such rule: it runs
      CoTracker on a grid restricted to the bounding box of a foreground
      mask; without masks, dropping static tracks plays the same part.
    - Per-step agreement: displacements are normalised to unit length and
      compared by their dot product (the cosine).  A step shorter than
      ``still_step`` (0.4%) of the longer side counts as still: still
      against still agrees fully (1), still against moving scores 0.  A
      pair's agreement is the mean over the steps where both tracks are
      observed (LK tracks run from frame 0 until lost, so two kept tracks
      share at least half of the steps); it lies in [-1, 1] and identical
      motion scores 1.
    - ``output_to_source``: mean over moving output tracks of the best
      agreement with any moving source track (the released script's score);
      ``source_to_output``: the same the other way round (it drops when the
      output misses part of the source's motion); ``motion_fidelity``: their
      mean (the paper's symmetric formula, halved to stay in [-1, 1]).
    - When a video has no moving tracks there is nothing to compare: all
      three are None and ``"warning"`` says which video it is (a score of 0
      would read as "opposite motion half-way", which it is not).

    Returns ``{"motion_fidelity", "output_to_source", "source_to_output",
    "tracks_source", "tracks_output", "motion_frames", "motion_size"}``, plus
    ``"warning"`` when a score is None:
    the tracks counts are the moving tracks kept, ``motion_frames`` is T and
    ``motion_size`` the common [width, height]. ``keep_tracks`` adds ``"tracks"``:
    {"source", "output"} float (tracks, T, 2) positions of the moving tracks in that common
    frame, NaN where a track was lost.
    """
    import numpy as np

    src = _check_motion_frames(source_frames, "source")
    out = _check_motion_frames(output_frames, "output")
    height, width = src.shape[1:3]
    if size is None:
        size = MOTION_SIZE
    scale = int(size) / max(width, height)
    width, height = max(8, round(width * scale)), max(8, round(height * scale))
    n_times = min(len(src), len(out))
    longer = float(max(width, height))

    feats, kept = [], []
    for arr in (src, out):
        tracks, visible = track_points(_resize_frames(arr, width, height), grid=grid, fb_threshold=fb_threshold)
        tracks, visible = _resample_tracks(tracks, visible, n_times)
        *feat, moving = _motion_features(tracks, visible, longer, min_motion, still_step, min_visible)
        feats.append(feat)
        # the moving tracks, each cut where it was lost (NaN there), for pictures
        kept.append(np.where(visible[moving][..., None], tracks[moving], np.nan))
    (unit_s, still_s, seen_s), (unit_o, still_o, seen_o) = feats
    n_src, n_out = len(unit_s), len(unit_o)

    warning = None
    if n_src == 0 or n_out == 0:
        o2s = s2o = score = None
        which = ("either video" if n_src == n_out else "the source" if n_src == 0 else "the video")
        warning = (f"no moving point tracks in {which}, so there is no motion to compare "
                   f"(motion fidelity n/a; {n_out} and {n_src} moving tracks in the video and the source)")
    else:
        # agree[i, j]: mean over the steps where output track i and source track j are
        # both observed of the per-step agreement (cosine; 1 for still against still).
        agree = unit_o.reshape(n_out, -1) @ unit_s.reshape(n_src, -1).T + still_o @ still_s.T
        agree /= np.maximum(seen_o @ seen_s.T, 1.0)
        o2s = float(agree.max(axis=1).mean())
        s2o = float(agree.max(axis=0).mean())
        score = (o2s + s2o) / 2
    result = {
        "motion_fidelity": score,
        "output_to_source": o2s,
        "source_to_output": s2o,
        "tracks_source": int(n_src),
        "tracks_output": int(n_out),
        "motion_frames": int(n_times),
        "motion_size": [int(width), int(height)],
    }
    if warning:
        result["warning"] = warning
    if keep_tracks:
        result["tracks"] = {"source": kept[0], "output": kept[1]}
    return result
