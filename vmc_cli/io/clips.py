"""Source clips as users have them: a video file, a folder of numbered frames, or a glob.

``read_clip`` decodes every frame at the key-frame size (center-cropped to its aspect
first, or squashed as the paper's code does with ``crop="none"``) and, for videos, each
frame's time on the source's own time axis (ffmpeg's presentation timestamps, nothing
re-encoded). ``pick_frames`` then resamples to ``--fps`` when asked and applies
``--start`` (a frame number or seconds, "1.5s") and ``--stride``.

Torch-free, so the CLI's input checks run before any model code is imported.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vmc_cli.errors import VmcError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CROPS = ("center", "none")


@dataclass
class Clip:
    """Decoded frames (N, H, W, 3) uint8 and where they came from."""

    frames: np.ndarray
    kind: str  # "video" or "frames"
    times: list[float] | None = None  # seconds, for videos
    files: list[Path] = field(default_factory=list)  # for frames
    native_size: tuple[int, int] | None = None  # (width, height) before cropping and resizing

    def __len__(self) -> int:
        return len(self.frames)


def count_of(n: int, noun: str) -> str:
    """'1 frame', '2 frames'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def natural_key(path: Path) -> list:
    """'2.jpg' before '10.jpg': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def image_files(spec: str | Path) -> list[Path] | None:
    """The frame files a folder or a glob names, in natural order; None for anything else
    (a video file). A folder or glob without images is a one-line error."""
    text = str(spec)
    if is_glob(text) and not Path(text).exists():
        files = [Path(p) for p in _glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise VmcError(f"no images match {text!r}", f"the pattern must match {', '.join(IMAGE_SUFFIXES)} files")
        return sorted(files, key=natural_key)
    path = Path(text)
    if not path.is_dir():
        return None
    files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise VmcError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                       "pass a folder of numbered frames, a quoted glob such as 'frames/*.png', or a video file")
    return sorted(files, key=natural_key)


def check_crop(crop: str) -> str:
    if crop not in CROPS:
        raise VmcError(f"unknown --crop {crop!r}", "use 'center' (crop to the key-frame aspect) or 'none' (squash)")
    return crop


def center_box(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The largest box of ``aspect`` (width / height) centred in a width x height frame."""
    w, h = (round(height * aspect), height) if width / height > aspect else (width, round(width / aspect))
    w, h = max(1, min(w, width)), max(1, min(h, height))
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def to_rgb8(im):
    """An image as 8-bit RGB. 16-bit (and 32-bit integer) greyscale is scaled down to 8 bits
    (PIL's ``convert("RGB")`` clips it, turning every frame black and white); RGB and RGBA of
    16 bits per channel reach here as 8-bit already, scaled by PIL when it decodes them."""
    from PIL import Image

    if im.mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N (16-bit PNG greyscale), I (32-bit)
        values = np.asarray(im).astype(np.float64)
        top = 65535.0 if values.max(initial=0) <= 65535 else float(values.max())
        grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if im.mode == "F":  # floating point greyscale: taken as 0..1 when it fits, else 0..255
        values = np.asarray(im).astype(np.float64)
        scale = 255.0 if np.nanmax(values, initial=0) <= 1.0 else 1.0
        grey = np.clip(np.round(np.nan_to_num(values) * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return im.convert("RGB")


def _read_images(files: list[Path], size: tuple[int, int] | None, crop: str) -> Clip:
    from PIL import Image, UnidentifiedImageError

    frames, sizes = [], set()
    for path in files:
        try:
            with Image.open(path) as im:
                im = to_rgb8(im)
        except (UnidentifiedImageError, OSError) as exc:
            raise VmcError(f"cannot read {path} as an image ({type(exc).__name__})",
                           "remove it from the folder or replace it") from None
        sizes.add(im.size)
        if len(sizes) > 1:
            first, other = sorted(sizes)[:2]
            raise VmcError(f"the frames differ in size ({first[0]}x{first[1]} and {other[0]}x{other[1]}, "
                           f"e.g. {path.name})", "all frames of a clip must have one size")
        if size is not None:
            if crop == "center":
                im = im.crop(center_box(*im.size, size[0] / size[1]))
            shrink = im.size[0] >= size[0] and im.size[1] >= size[1]
            im = im.resize(size, Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC)
        frames.append(np.asarray(im, dtype=np.uint8))
    return Clip(np.stack(frames), "frames", files=list(files), native_size=next(iter(sizes)))


def _read_video(path: Path, size: tuple[int, int] | None, crop: str) -> Clip:
    import ffmpeg

    from vmc_cli.io.media import ffmpeg_exe, frame_size_from_banner

    if not path.exists():
        raise VmcError(f"no such file: {path}", "check the path of the clip")
    stream = ffmpeg.input(str(path))
    if size is not None:
        if crop == "center":  # scale to cover the key-frame size, then cut the middle out
            stream = stream.filter("scale", size[0], size[1], force_original_aspect_ratio="increase", flags="area")
            stream = stream.filter("crop", size[0], size[1])
        else:
            stream = stream.filter("scale", size[0], size[1], flags="area")
    stream = stream.filter("showinfo")  # each frame's presentation time, on stderr
    out = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
    try:
        data, err = out.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, quiet=True)
    except ffmpeg.Error as exc:
        text = (exc.stderr or b"").decode(errors="replace")
        detail = text.strip().splitlines()
        last = "has no video stream" if no_video_stream(text) else detail[-1] if detail else "ffmpeg failed"
        raise VmcError(f"cannot read {path} as a video ({last})",
                       "pass a video file (mp4, webm, mov, gif...), a folder of frames or a quoted glob") from None
    text = err.decode(errors="replace")
    native = frame_size_from_banner(text)
    w, h = size or native or (0, 0)
    if not w or not data or len(data) % (w * h * 3):
        reason = "has no video stream" if no_video_stream(text) else "no decodable frames"
        raise VmcError(f"cannot read {path} as a video ({reason})",
                       "pass a video file (mp4, webm, mov, gif...), a folder of frames or a quoted glob")
    frames = np.frombuffer(data, np.uint8).reshape(-1, h, w, 3).copy()
    times = [float(t) for t in re.findall(r"pts_time:\s*(-?[0-9.eE+-]+)", text)]
    if len(times) != len(frames):  # no usable timestamps: assume the nominal rate
        rate = re.search(r"(\d+(?:\.\d+)?) fps", text)
        fps = float(rate.group(1)) if rate else 25.0
        times = [i / fps for i in range(len(frames))]
    return Clip(frames, "video", times=[t - times[0] for t in times], native_size=native)


def no_video_stream(ffmpeg_log: str) -> bool:
    """ffmpeg found streams in the input, none of them video (an audio file, subtitles)."""
    inputs, reading_input = [], False
    for line in ffmpeg_log.splitlines():
        if line.startswith(("Input #", "Output #")):
            reading_input = line.startswith("Input #")
        elif reading_input and re.search(r"Stream #\d+:\d+.*: (Video|Audio|Subtitle|Data|Attachment):", line):
            inputs.append(line)
    return bool(inputs) and not any(": Video:" in line for line in inputs)


def read_clip(spec: str | Path, size: tuple[int, int] | None = None, crop: str = "center") -> Clip:
    """A video file, a folder of frames or a glob, decoded at ``size`` = (width, height)
    (None: as stored)."""
    check_crop(crop)
    files = image_files(spec)
    if files is not None:
        return _read_images(files, size, crop)
    return _read_video(Path(spec), size, crop)


def clip_sha256(spec: str | Path, clip: Clip) -> str:
    """The file's sha256; for frames, the sha256 over each frame file's name and sha256."""
    from vmc_cli.io.media import file_sha256

    if clip.kind == "video":
        return file_sha256(spec)
    h = hashlib.sha256()
    for path in clip.files:
        h.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


def parse_start(text: str | int | None) -> tuple[int, float | None]:
    """``--start``: a frame number ("12") or seconds ("1.5s"). Returns (frame, seconds)."""
    if text is None:
        return 0, None
    value = str(text).strip()
    try:
        if value.endswith("s"):
            seconds = float(value[:-1])
            if not (math.isfinite(seconds) and seconds >= 0):  # float() takes "nan" and "inf"
                raise ValueError
            return 0, seconds
        frame = int(value)
        if frame < 0:
            raise ValueError
        return frame, None
    except ValueError:
        raise VmcError(f"--start {text!r} is neither a frame number nor seconds",
                       "give a frame number (--start 12) or seconds (--start 1.5s), not negative") from None


@dataclass
class Picked:
    indexes: list[int]  # into the decoded clip (the source's own frames)
    times: list[float] | None  # their times on the source's axis, seconds


def pick_frames(clip: Clip, frames: int, stride: int = 1, start: str | int | None = None,
                fps: float | None = None) -> Picked:
    """``frames`` frames of ``clip``: resampled to ``fps`` first (each new frame is the source
    frame nearest its time), then from ``start`` every ``stride``-th."""
    if frames < 2:
        raise VmcError(f"--frames must be at least 2, got {frames}", "e.g. --frames 8, or leave it out for the backend's")
    if stride < 1:
        raise VmcError(f"--stride must be at least 1, got {stride}", "e.g. --stride 2 to take every other frame")
    frame, seconds = parse_start(start)
    if (fps is not None or seconds is not None) and clip.times is None:
        raise VmcError("a folder of frames has no frame rate, so --fps and --start in seconds do not apply",
                       "give --start as a frame number and pick frames with --stride")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise VmcError(f"--fps must be a positive number, got {fps}", "e.g. --fps 8")
    times = np.asarray(clip.times if clip.times is not None else range(len(clip)), dtype=float)
    if fps is not None:  # the resampled clip: one frame every 1/fps seconds of the source
        count = int(np.floor(times[-1] * fps + 1e-6)) + 1
        wanted = np.arange(count) / fps
        order = np.searchsorted(times, wanted)
        lo, hi = np.clip(order - 1, 0, len(times) - 1), np.clip(order, 0, len(times) - 1)
        axis = np.where(np.abs(times[hi] - wanted) < np.abs(wanted - times[lo]), hi, lo)
        axis_times = wanted
    else:
        axis, axis_times = np.arange(len(clip)), times
    if seconds is not None:
        later = np.nonzero(axis_times >= seconds - 1e-6)[0]
        if not len(later):
            raise VmcError(f"--start {seconds:g}s is past the end of the clip ({times[-1]:.2f}s)",
                           f"give a --start below {times[-1]:.2f}s, or leave it out to start at the first frame")
        frame = int(later[0])
    last = frame + (frames - 1) * stride  # before building the list: --frames may be huge
    if last >= len(axis):
        at = f"{seconds:g}s" if seconds is not None else f"frame {frame}"
        rate = f" at {fps:g} fps" if fps is not None else ""
        raise VmcError(f"the clip has {count_of(len(axis), 'frame')}{rate}, but {frames} frames with stride {stride} "
                       f"from {at} need {last + 1}", "use a longer clip or lower --frames / --stride / --start")
    positions = [frame + i * stride for i in range(frames)]
    indexes = [int(axis[p]) for p in positions]
    return Picked(indexes, [round(float(times[i]), 4) for i in indexes] if clip.times is not None else None)
