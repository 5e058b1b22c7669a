"""Reading and writing clips with ffmpeg (through ffmpeg-python), frame sampling, resizing.

Frames are uint8 numpy arrays shaped (frames, height, width, 3), RGB.
The ffmpeg binary is the one on PATH when there is one, else the one shipped
by the ``imageio-ffmpeg`` wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import VmcError
from .media import ffmpeg_exe, frame_size_from_banner

FORMATS = ("mp4", "gif", "png")


def read_video(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """All frames of a clip as (frames, height, width, 3) uint8.

    ``size`` = (width, height) resizes while decoding (ffmpeg's area filter).
    """
    import ffmpeg

    path = Path(path)
    if not path.exists():
        raise VmcError(f"no such file: {path}", "check the path of the clip")
    if path.is_dir():
        raise VmcError(f"{path} is a folder, not a video file")
    stream = ffmpeg.input(str(path))
    if size is not None:
        stream = stream.filter("scale", size[0], size[1], flags="area")
    out = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24")
    try:
        data, err = out.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, quiet=True)
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        last = detail[-1] if detail else "ffmpeg failed"
        raise VmcError(f"cannot read {path} as a video ({last})", "pass an mp4, webm, mov, gif... clip") from None
    err_text = err.decode(errors="replace")
    if size is None:
        size = frame_size_from_banner(err_text)
        if size is None:
            raise VmcError(f"cannot read {path} as a video (no video stream)")
    w, h = size
    frame_bytes = w * h * 3
    if not data or len(data) % frame_bytes:
        raise VmcError(f"cannot read {path} as a video (no decodable frames)")
    return np.frombuffer(data, np.uint8).reshape(-1, h, w, 3).copy()


def frame_indexes(total: int, frames: int, stride: int = 1, start: int = 0) -> list[int]:
    """Indexes ``start, start + stride, ...`` (``frames`` of them), checked against ``total``."""
    if frames < 2:
        raise VmcError(f"need at least 2 frames, got {frames}")
    if stride < 1 or start < 0:
        raise VmcError("--stride must be >= 1 and --start >= 0")
    idx = [start + i * stride for i in range(frames)]
    if idx[-1] >= total:
        raise VmcError(
            f"the clip has {total} frames, but {frames} frames with stride {stride} from frame {start} "
            f"need {idx[-1] + 1}",
            "use a longer clip or lower --frames / --stride / --start",
        )
    return idx


def default_mode(path: str | Path) -> None:
    """Give a file or folder made by ``tempfile`` (0600/0700) the permissions a
    plain ``open``/``mkdir`` would have given it under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


def guess_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise VmcError(f"unknown format {fmt!r}", f"choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("mp4", "gif"):
        return suffix
    if suffix in ("", "png"):
        return "png" if suffix == "png" or path.is_dir() else "mp4"
    raise VmcError(f"cannot tell the format of {path}", "use a .mp4 or .gif name, or --format")


def write_video(frames: np.ndarray, path: str | Path, fmt: str | None = None, fps: float = 8.0) -> Path:
    """Write (frames, height, width, 3) uint8 as mp4, gif or a folder of PNGs.

    Written to a temporary name next to the target and renamed into place, so
    an interrupted write leaves nothing half-written.
    """
    import ffmpeg

    path = Path(path)
    fmt = guess_format(path, fmt)
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "png":
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        target = tmp / "frame_%04d.png"
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".{fmt}", dir=path.parent)
        os.close(fd)
        tmp = target = Path(name)
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
    if fmt == "mp4":
        # H.264 in yuv420p needs even sizes: pad by one pixel where needed.
        stream = stream.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        out = stream.output(str(target), vcodec="libx264", pix_fmt="yuv420p", crf=16, movflags="+faststart")
    elif fmt == "gif":
        split = stream.split()
        palette = split[0].filter("palettegen")
        out = ffmpeg.filter([split[1], palette], "paletteuse").output(str(target))
    else:
        out = stream.output(str(target), start_number=0)
    try:
        out.overwrite_output().run(cmd=ffmpeg_exe(), input=frames.tobytes(), quiet=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        if isinstance(exc, ffmpeg.Error):
            msg = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            raise VmcError(f"ffmpeg could not write {path}: {msg[-1] if msg else 'unknown error'}") from None
        raise
    if fmt == "png" and path.exists():
        ours = path.is_dir() and all(re.fullmatch(r"frame_\d+\.png", p.name) for p in path.iterdir())
        if not ours:
            shutil.rmtree(tmp, ignore_errors=True)
            raise VmcError(f"{path} exists and is not a folder of frames written by vmc", "choose another -o")
        shutil.rmtree(path)
    default_mode(tmp)
    os.replace(tmp, path)
    return path


def read_frames(path: str | Path) -> np.ndarray:
    """A video file, a folder of frames (as ``--format png`` writes, or jpg/webp) or a glob,
    as uint8 frames at their stored size."""
    from .clips import read_clip

    return read_clip(path, None, "none").frames
