"""Pictures of the motion: source and generated key-frames side by side (a GIF), and the
point tracks of two videos on one plot (``vmc eval --plot``)."""

from __future__ import annotations

import warnings
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


def representative(tracks: np.ndarray, count: int = 5) -> np.ndarray:
    """At most ``count`` of ``tracks`` (n, frames, 2), spread over where they start: sorted by
    start position (x, then y) and taken at even intervals, so one busy region does not fill the plot."""
    if len(tracks) <= count:
        return tracks
    order = np.lexsort((tracks[:, 0, 1], tracks[:, 0, 0]))
    return tracks[order[np.round(np.linspace(0, len(tracks) - 1, count)).astype(int)]]


def plot_tracks(tracks: dict, size: tuple[int, int], path: str | Path, title: str = "",
                background: np.ndarray | None = None, few: int = 5):
    """Draw the motion of the source (blue) and the video (orange) on one picture, in the common
    frame of ``size`` = (width, height) pixels, and write a PNG. Returns the matplotlib figure.

    Each video's motion path, the mean position of its moving point tracks at each key-frame, is
    a bold line numbered 1, 2, ... at the key-frames, so the order and shape of the motion read
    at a glance; ``few`` representative tracks of each (spread over where they start) are drawn
    thin behind it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    width, height = size
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * height / width + 0.6), dpi=100)
    if background is not None:
        ax.imshow(background, extent=(0, width, height, 0), alpha=0.35)
    for key, colour, label, shift in (("source", SOURCE_COLOUR, "source", -1), ("output", OUTPUT_COLOUR, "video", 1)):
        lines = np.asarray(tracks.get(key, np.zeros((0, 0, 2))), dtype=float)
        for track in representative(lines, few):
            ax.plot(track[:, 0], track[:, 1], color=colour, lw=0.8, alpha=0.35, gid=key)
        if not len(lines):
            continue
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a frame where every track is lost stays NaN
            mean = np.nanmean(lines, axis=0)  # a track lost part-way counts where it is still found
        ax.plot(mean[:, 0], mean[:, 1], color=colour, lw=2.5, marker="o", ms=4, gid=f"{key}-path",
                label=f"{label}: mean path of {len(lines)} moving tracks")
        placed = []  # a key-frame where an earlier one was (a closed loop, a pause) joins its label: "1,8"
        for k, (x, y) in enumerate(mean):
            if np.isnan(x) or np.isnan(y):
                continue
            near = [a for a in placed if np.hypot(a.xy[0] - x, a.xy[1] - y) < 0.02 * max(width, height)]
            if near:
                near[0].set_text(f"{near[0].get_text()},{k + 1}")
                continue
            placed.append(ax.annotate(str(k + 1), (x, y), xytext=(4 * shift, 4), textcoords="offset points",
                                      color=colour, fontsize=9, fontweight="bold", ha="center", gid=f"{key}-number"))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    if any(len(tracks.get(k, [])) for k in ("source", "output")):
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    from vmc_cli.io.video import write_file

    try:  # a temporary file renamed into place (through symlinks), or written through to a device
        write_file(Path(path), lambda tmp: fig.savefig(tmp, format="png"), ".png")
    finally:
        plt.close(fig)
    return fig


def write_outputs(key, frames, source_key, out: Path, fmt: str | None, fps: float, keyframe_out: Path | None,
                  side_by_side_out: Path | None) -> dict:
    """The video, and the key-frames and source/key-frame pair when asked for, each about the
    video's duration at a whole frame rate (GIF delays are coarse)."""
    from vmc_cli.io.video import write_video

    path = write_video(frames, out, fmt, fps)
    key_fps = max(1, round(fps * len(key) / len(frames)))
    keyframe_path = None if keyframe_out is None else str(write_video(key, keyframe_out, None, key_fps))
    pair_path = None
    if side_by_side_out is not None:
        pair_path = str(write_video(side_by_side(source_key, key), side_by_side_out, None, key_fps))
    return {"path": str(path), "keyframes": keyframe_path, "side_by_side": pair_path}
