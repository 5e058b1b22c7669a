"""Pictures of the motion: source and generated key-frames side by side (a GIF), and the
point tracks of two videos on one plot (``vmc eval --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def side_by_side(source: np.ndarray, generated: np.ndarray, height: int = 128, gap: int = 4) -> np.ndarray:
    """(frames, height, w1 + gap + w2, 3) uint8, both enlarged (nearest neighbour) to ``height``,
    with as many frames as the longer input: each output frame shows both videos at the same
    point in time (8 source frames against 29 generated ones work)."""
    import cv2

    n = max(len(source), len(generated))

    def at(video, i):  # the frame at the same relative time
        return video[round(i * (len(video) - 1) / max(n - 1, 1))]

    def enlarge(frame):
        w = max(1, round(frame.shape[1] * height / frame.shape[0]))
        return cv2.resize(np.ascontiguousarray(frame), (w, height), interpolation=cv2.INTER_NEAREST)

    out = []
    for i in range(n):
        a, b = enlarge(at(source, i)), enlarge(at(generated, i))
        out.append(np.concatenate([a, np.full((height, gap, 3), 128, np.uint8), b], axis=1))
    return np.stack(out)


SOURCE_COLOUR, OUTPUT_COLOUR = "#1f77b4", "#ff7f0e"


def plot_tracks(tracks: dict, size: tuple[int, int], path: str | Path, title: str = "",
                background: np.ndarray | None = None):
    """Draw the moving point tracks of the source (blue) and the video (orange) on one
    picture, in the common frame of ``size`` = (width, height) pixels, each track a line
    from a dot (where it starts) to its end; write a PNG. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    width, height = size
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * height / width + 0.6), dpi=100)
    if background is not None:
        ax.imshow(background, extent=(0, width, height, 0), alpha=0.35)
    for key, colour, label in (("source", SOURCE_COLOUR, "source"), ("output", OUTPUT_COLOUR, "video")):
        lines = tracks.get(key, np.zeros((0, 0, 2)))
        for i, track in enumerate(lines):
            ax.plot(track[:, 0], track[:, 1], color=colour, lw=1.2, alpha=0.8,
                    label=f"{label} ({len(lines)} moving tracks)" if i == 0 else None, gid=key)
            ax.plot(track[:1, 0], track[:1, 1], "o", color=colour, ms=2.5, gid=f"{key}-start")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    if any(len(tracks.get(k, [])) for k in ("source", "output")):
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    from .video import write_file

    try:  # a temporary file renamed into place (through symlinks), or written through to a device
        write_file(Path(path), lambda tmp: fig.savefig(tmp, format="png"), ".png")
    finally:
        plt.close(fig)
    return fig


def write_outputs(key, frames, source_key, out: Path, fmt: str | None, fps: float, keyframe_out: Path | None,
                  side_by_side_out: Path | None) -> dict:
    """The video, and the key-frames and source/key-frame pair when asked for, each about the
    video's duration at a whole frame rate (GIF delays are coarse)."""
    from .video import write_video

    path = write_video(frames, out, fmt, fps)
    key_fps = max(1, round(fps * len(key) / len(frames)))
    keyframe_path = None if keyframe_out is None else str(write_video(key, keyframe_out, None, key_fps))
    pair_path = None
    if side_by_side_out is not None:
        pair_path = str(write_video(side_by_side(source_key, key), side_by_side_out, None, key_fps))
    return {"path": str(path), "keyframes": keyframe_path, "side_by_side": pair_path}
