"""Clip I/O: lossless PNG round trip, lossy formats stay close, permissions, frame sampling."""

import os
import stat

import numpy as np
import pytest

from vmc_cli.errors import VmcError
from vmc_cli.io.video import frame_indexes, read_frames, read_video, write_video


def _frames(n=6, h=40, w=64):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, h // 8, w // 8, 3)).repeat(8, 1).repeat(8, 2)  # blocky: codec-friendly
    return np.concatenate([np.roll(base, i * 8, axis=2) for i in range(n)]).astype(np.uint8)


def test_png_folder_round_trip_is_exact(tmp_path):
    frames = _frames()
    out = write_video(frames, tmp_path / "frames", "png")
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:04d}.png" for i in range(6)]
    assert np.array_equal(read_frames(out), frames)


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_lossy_formats_keep_size_count_and_content(tmp_path, fmt):
    frames = _frames()
    path = write_video(frames, tmp_path / f"v.{fmt}")
    back = read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 40  # same picture, up to compression
    resized = read_video(path, size=(32, 20))
    assert resized.shape == (6, 20, 32, 3)


def test_odd_sizes_are_padded_for_h264(tmp_path):
    odd = np.zeros((3, 41, 63, 3), np.uint8)
    odd[:, 10:30, 20:40] = 200
    back = read_video(write_video(odd, tmp_path / "odd.mp4"))
    assert back.shape == (3, 42, 64, 3)


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        f = write_video(_frames(2), tmp_path / "a.mp4")
        d = write_video(_frames(2), tmp_path / "d", "png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_png_output_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(VmcError, match="not a folder of frames"):
        write_video(_frames(2), tmp_path / "mine", "png")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_frame_indexes():
    assert frame_indexes(12, 8) == list(range(8))
    assert frame_indexes(30, 8, stride=4, start=1) == [1, 5, 9, 13, 17, 21, 25, 29]
    with pytest.raises(VmcError, match="need 31"):
        frame_indexes(29, 8, stride=4, start=2)
    with pytest.raises(VmcError):
        frame_indexes(10, 1)
