from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import Device, Json, Quiet


def evaluate(
    video: Annotated[Path, typer.Argument(help="A generated video (mp4, gif, ...) or a folder of PNG frames.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt the video was generated with.")],
    keyframes: Annotated[Optional[int], typer.Option(
        "--keyframes", help="Score only N evenly spaced key-frames (29 frames, N=8 -> frames 1,5,...,29), "
        "as the paper does.", show_default=False)] = None,
    clip_model: Annotated[Optional[str], typer.Option(
        "--clip-model", help="CLIP model: a hub id or a local folder [default: openai/clip-vit-large-patch14].",
        show_default=False)] = None,
    device: Device = "auto",
    as_json: Json = False,
    quiet: Quiet = False,
):
    """Score a video with the paper's CLIP metrics: text alignment and temporal consistency.

    Text alignment: mean cosine between the prompt's text embedding and each frame's image
    embedding. Temporal consistency: mean cosine over all pairs of frames' image embeddings.
    """
    from ..jobs import resolve_device
    from ..metrics import DEFAULT_CLIP_MODEL, clip_scores, keyframe_indexes
    from ..output import emit_json, info
    from ..video import read_frames

    frames = read_frames(video)
    indexes = list(range(len(frames)))
    if keyframes:
        indexes = keyframe_indexes(len(frames), keyframes)
    info(f"scoring {len(indexes)} of {len(frames)} frames with CLIP", quiet or as_json)
    scores = clip_scores(frames[indexes], prompt, clip_model or DEFAULT_CLIP_MODEL, device=resolve_device(device))
    result = {"video": str(video), "prompt": prompt, "frame_indexes": indexes,
              "clip_model": clip_model or DEFAULT_CLIP_MODEL, **scores}
    if as_json:
        emit_json(result)
    else:
        print(f"text alignment       {scores['text_alignment']:.4f}")
        print(f"temporal consistency {scores['temporal_consistency']:.4f}")
