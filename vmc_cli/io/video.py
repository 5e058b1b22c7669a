"""Reading and writing clips with ffmpeg (through ffmpeg-python), frame sampling, resizing.

Frames are uint8 numpy arrays shaped (frames, height, width, 3), RGB.
The ffmpeg binary is the one on PATH when there is one, else the one shipped
by the ``imageio-ffmpeg`` wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np

from vmc_cli.errors import VmcError
from vmc_cli.io.media import ffmpeg_exe, frame_size_from_banner

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
        raise VmcError(f"{path} is a folder, not a video file", "pass a video file (mp4, webm, mov, gif...)")
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
            raise VmcError(f"cannot read {path} as a video (no video stream)", "pass a video file (mp4, webm, mov, gif...)")
    w, h = size
    frame_bytes = w * h * 3
    if not data or len(data) % frame_bytes:
        raise VmcError(f"cannot read {path} as a video (no decodable frames)", "pass a video file (mp4, webm, mov, gif...)")
    return np.frombuffer(data, np.uint8).reshape(-1, h, w, 3).copy()


def frame_indexes(total: int, frames: int, stride: int = 1, start: int = 0) -> list[int]:
    """Indexes ``start, start + stride, ...`` (``frames`` of them), checked against ``total``."""
    if frames < 2:
        raise VmcError(f"--frames must be at least 2, got {frames}", "e.g. --frames 8")
    if stride < 1 or start < 0:
        raise VmcError(f"--stride must be at least 1 and --start at least 0, got {stride} and {start}",
                       "e.g. --stride 1 --start 0")
    last = start + (frames - 1) * stride  # before building the list: frames may be huge
    if last >= total:
        raise VmcError(
            f"the clip has {total} frame{'' if total == 1 else 's'}, but {frames} frames with stride {stride} from frame {start} "
            f"need {last + 1}",
            "use a longer clip or lower --frames / --stride / --start",
        )
    return [start + i * stride for i in range(frames)]


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


#: paths that name this process's own standard streams (not files to replace)
STD_STREAMS = {"/dev/stdout": 1, "/dev/fd/1": 1, "/proc/self/fd/1": 1,
               "/dev/stderr": 2, "/dev/fd/2": 2, "/proc/self/fd/2": 2}


def stream_of(path: str | Path) -> int | str | None:
    """How an output path is written *through* instead of replaced: 1 or 2 for this process's
    stdout or stderr (``/dev/stdout``...), ``"device"`` for a character device or a FIFO
    (``/dev/null``, a named pipe, also behind a symlink); None for a file or folder."""
    text = os.path.normpath(str(path))
    if text in STD_STREAMS:
        return STD_STREAMS[text]
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except (OSError, ValueError):
        return None
    return "device" if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) else None


def final_path(path: str | Path) -> Path:
    """Where an output really goes: a symlink's target (a rename onto the link itself
    would replace the link with a file)."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _is_vmc_frames(folder: Path) -> bool:
    return folder.is_dir() and all(re.fullmatch(r"frame_\d+\.png", p.name) for p in folder.iterdir())


def check_output(path: str | Path, fmt: str | None = None, option: str = "-o", suffix: str | None = None) -> str:
    """Refuse, before any work, an output that cannot be written: an unknown format, a folder
    where a file is wanted (or the reverse), a folder that cannot be created or written into.
    ``suffix`` (e.g. ".png"): the one suffix the option takes. Returns the format."""
    path = Path(path)
    fmt = suffix.lstrip(".") if suffix else guess_format(path, fmt)
    if stream_of(path) is not None:
        if fmt == "png" and not suffix:
            raise VmcError(f"{option} {path} is a stream, and a folder of PNG frames cannot be written to it",
                           f"use --format mp4 or gif, or give {option} a folder")
        return fmt
    target = final_path(path)
    if target.exists():
        if fmt == "png" and not suffix:
            if not _is_vmc_frames(target):
                raise VmcError(f"{option} {path} exists and is not a folder of frames written by vmc",
                               f"choose another {option}")
        elif target.is_dir():
            raise VmcError(f"{option} {path} is a folder", f"give {option} a file name, e.g. {path / ('out.' + fmt)}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise VmcError(f"{option} {path}: {folder} is not a folder", f"choose another {option}")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(target.name.encode()) + 24 > name_max:  # room for the temporary name next to it
        raise VmcError(f"{option} {path}: the file name is too long ({len(target.name.encode())} bytes, at most "
                       f"{name_max - 24} here)", f"give {option} a shorter name")
    try:  # the one sure test: create (and remove) an entry where the output will be renamed into place
        fd, probe = tempfile.mkstemp(prefix=".vmc-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise VmcError(f"cannot write {option} {path}: nothing can be created in {folder} ({exc.strerror or exc})",
                       f"choose a folder you can write to for {option}") from None
    return fmt


def _copy_to_stream(source: Path, path: Path, stream: int | str) -> None:
    """Write the finished file ``source`` through to stdout/stderr, a device or a FIFO."""
    import sys

    data = source.read_bytes()
    try:
        if stream in (1, 2):
            out = (sys.stdout if stream == 1 else sys.stderr).buffer
            out.write(data)
            out.flush()
        else:
            with open(path, "wb") as f:
                f.write(data)
    except OSError as exc:
        raise VmcError(f"cannot write {path}: {exc.strerror or exc}", "choose another output path") from None


def write_file(path: str | Path, write, suffix: str) -> Path:
    """Write one output file with ``write(tmp_path)``: into a temporary name next to the
    target, then renamed into place (onto a symlink's target, not the link), so an
    interrupted write leaves nothing half-written; to a device, a FIFO or /dev/stdout the
    finished file is written through instead. Returns ``path``."""
    path = Path(path)
    stream = stream_of(path)
    if stream is not None:
        tmp_dir = Path(tempfile.mkdtemp(prefix="vmc-"))
        try:
            tmp = tmp_dir / f"out{suffix}"
            write(tmp)
            _copy_to_stream(tmp, path, stream)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return path
    target = final_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        default_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_video(frames: np.ndarray, path: str | Path, fmt: str | None = None, fps: float = 8.0) -> Path:
    """Write (frames, height, width, 3) uint8 as mp4, gif or a folder of PNGs.

    Written to a temporary name next to the target and renamed into place (onto a
    symlink's target), so an interrupted write leaves nothing half-written; a device, a
    FIFO or /dev/stdout is written through (see :func:`write_file`).
    """
    import ffmpeg

    path = Path(path)
    fmt = check_output(path, fmt) if stream_of(path) is not None else guess_format(path, fmt)
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape

    def encode(target: Path) -> None:
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
            out = stream.output(str(target / "frame_%04d.png"), start_number=0)
        try:
            out.overwrite_output().run(cmd=ffmpeg_exe(), input=frames.tobytes(), quiet=True)
        except ffmpeg.Error as exc:
            msg = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            raise VmcError(f"ffmpeg could not write {path}: {msg[-1] if msg else 'unknown error'}",
                           "check the output path and the free disk space") from None

    if fmt != "png":
        return write_file(path, encode, f".{fmt}")
    target = final_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        encode(tmp)
        if target.exists():
            if not _is_vmc_frames(target):
                raise VmcError(f"{path} exists and is not a folder of frames written by vmc", "choose another -o")
            shutil.rmtree(target)
        default_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_frames(path: str | Path) -> np.ndarray:
    """A video file, a folder of frames (as ``--format png`` writes, or jpg/webp) or a glob,
    as uint8 frames at their stored size."""
    from vmc_cli.io.clips import read_clip

    return read_clip(path, None, "none").frames
