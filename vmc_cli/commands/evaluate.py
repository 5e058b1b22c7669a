from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vmc_cli.commands.options import Device, Json, Quiet


def evaluate(
    video: Annotated[Path, typer.Argument(help="A generated video (mp4, gif, ...) or a folder of PNG frames.")],
    prompt: Annotated[Optional[str], typer.Option(
        "--prompt", "-p", help="The prompt the video was generated with (required unless --no-clip).",
        show_default=False)] = None,
    source: Annotated[Optional[Path], typer.Option(
        "--source", help="The source clip whose motion the video should follow: adds the motion fidelity "
        "score (point tracks on both videos, best-matching track agreement).", show_default=False)] = None,
    no_clip: Annotated[bool, typer.Option(
        "--no-clip", help="Skip the CLIP scores (no CLIP model needed); needs --source.")] = False,
    keyframes: Annotated[Optional[int], typer.Option(
        "--keyframes", help="Score only N evenly spaced key-frames with CLIP (29 frames, N=8 -> frames "
        "1,5,...,29), as the paper does. Motion fidelity always uses all frames.", show_default=False)] = None,
    clip_model: Annotated[Optional[str], typer.Option(
        "--clip-model", help="CLIP model: a hub id or a local folder (default: openai/clip-vit-large-patch14).",
        show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="With --source: draw both videos' moving point tracks on one picture (PNG), the source's "
        "in blue over its first frame and the video's in orange, to see where the motion differs.",
        show_default=False)] = None,
    device: Device = "auto",
    as_json: Json = False,
    quiet: Quiet = False,
):
    """Score a video with the paper's CLIP metrics and, given --source, motion fidelity.

    Text alignment: mean cosine between the prompt's text embedding and each frame's image
    embedding. Temporal consistency: mean cosine over all pairs of frames' image embeddings.

    Motion fidelity (--source): a grid of points tracked through both videos;
    each moving track's best time-averaged cosine between unit displacements
    with a track of the other video, averaged over tracks, both ways; the
    score is the mean of the two ways (1: same motion, -1: opposite).
    """
    import numpy as np

    from vmc_cli.errors import VmcError
    from vmc_cli.commands.output import emit_json, info
    from vmc_cli.io.video import read_frames

    from vmc_cli.backend import check_device

    check_device(device)
    if no_clip and source is None:
        raise VmcError("--no-clip leaves nothing to score without --source.",
                       hint="Pass --source CLIP to score motion fidelity, or drop --no-clip.")
    if keyframes is not None and keyframes < 1:
        raise VmcError(f"--keyframes must be at least 1, not {keyframes}",
                       hint="Pass --keyframes N with N >= 1 (e.g. 8, as the paper does), or leave it out "
                       "to score all frames.")
    if plot is not None and source is None:
        raise VmcError("--plot draws the motion against --source", hint="Pass --source CLIP as well.")
    if plot is not None and plot.suffix.lower() != ".png":
        raise VmcError(f"--plot writes a PNG, not {plot.name}", hint="Give a path ending in .png.")
    if plot is not None:
        from vmc_cli.io.video import check_output

        check_output(plot, option="--plot", suffix=".png")  # before minutes of tracking
    if not no_clip and not prompt:
        raise VmcError("--prompt is required for the CLIP scores.",
                       hint="Pass --prompt, or --no-clip with --source to score motion fidelity only.")

    frames = read_frames(video)
    source_frames = read_frames(source) if source is not None else None
    result: dict = {"video": str(video)}
    if prompt:
        result["prompt"] = prompt

    if not no_clip:
        from vmc_cli.jobs.runtime import resolve_device
        from vmc_cli.method.metrics import DEFAULT_CLIP_MODEL, clip_scores, keyframe_indexes

        indexes = list(range(len(frames)))
        if keyframes is not None:
            indexes = keyframe_indexes(len(frames), keyframes)
        info(f"scoring {len(indexes)} of {len(frames)} frames with CLIP", quiet or as_json)
        scores = clip_scores(frames[indexes], prompt, clip_model or DEFAULT_CLIP_MODEL,
                             device=resolve_device(device))
        result.update({"frame_indexes": indexes, "clip_model": clip_model or DEFAULT_CLIP_MODEL, **scores})

    motion = None
    if source_frames is not None:
        from vmc_cli.method.metrics import motion_fidelity

        info(f"tracking points in {len(source_frames)} source and {len(frames)} video frames",
             quiet or as_json)
        motion = motion_fidelity(source_frames, frames, keep_tracks=plot is not None)
        tracks = motion.pop("tracks", None)
        if motion.get("warning"):
            info(f"warning: {motion['warning']}", quiet or as_json)
        result.update({"source": str(source), **motion})
        if plot is not None:
            import cv2

            from vmc_cli.io.pictures import plot_tracks

            size = tuple(motion["motion_size"])
            score = motion["motion_fidelity"]
            title = f"motion fidelity {score:.3f}" if score is not None else "motion fidelity n/a"
            background = cv2.resize(np.ascontiguousarray(source_frames[0]), size, interpolation=cv2.INTER_AREA)
            plot_tracks(tracks, size, plot, title=f"{title}: {source.name} (blue) and {video.name} (orange)",
                        background=background)
            result["plot"] = str(plot)
            info(f"motion tracks drawn in {plot}", quiet or as_json)

    if as_json:
        emit_json(result)
        return
    if not no_clip:
        print(f"text alignment       {result['text_alignment']:.4f}")
        print(f"temporal consistency {result['temporal_consistency']:.4f}")
    if motion is not None:
        if motion["motion_fidelity"] is None:
            print(f"motion fidelity      n/a ({motion['tracks_output']} and {motion['tracks_source']} moving tracks: "
                  "nothing to compare)")
        else:
            print(f"motion fidelity      {motion['motion_fidelity']:.4f}  "
                  f"(video->source {motion['output_to_source']:.4f}, "
                  f"source->video {motion['source_to_output']:.4f}; "
                  f"{motion['tracks_output']} and {motion['tracks_source']} moving tracks)")
