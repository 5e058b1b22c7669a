"""Low-level file helpers: which ffmpeg binary to run, the frame size ffmpeg reports, and a
file's sha256 (source clips, profile weights and checkpoints are checksummed with it).

``video`` (ffmpeg reads and writes) and ``clips`` (sources as users have them, which
``video.read_frames`` reads through) both need them; they live here, importing neither, so
that ``clips`` does not import ``video`` back.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from vmc_cli.errors import VmcError


def ffmpeg_exe() -> str:
    """``$VMC_FFMPEG``, else the ffmpeg on PATH, else the one shipped by the ``imageio-ffmpeg`` wheel."""
    exe = os.environ.get("VMC_FFMPEG") or shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise VmcError("no ffmpeg binary found", "install ffmpeg or `pip install imageio-ffmpeg`") from exc


def frame_size_from_banner(text: str) -> tuple[int, int] | None:
    """(width, height) of the first video stream in what ffmpeg prints on stderr; None without one."""
    for line in text.splitlines():
        if "Stream #" in line and "Video:" in line:
            m = re.search(r"[, ](\d{2,5})x(\d{2,5})[, \[]", line)
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
