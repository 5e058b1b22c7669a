"""Source clips: folders of frames and globs, --crop, --fps resampling, --start in seconds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vmc_cli.io.clips import Clip, center_box, parse_start, pick_frames, read_clip
from vmc_cli.errors import VmcError
from vmc_cli.store.profiles import ProfileStore
from vmc_cli.io.video import read_frames, write_video


def grey_frames(n: int, w: int = 32, h: int = 20, step: int = 10) -> np.ndarray:
    """Frame i is a flat grey of level step * i: its index can be read back from any pixel."""
    return np.stack([np.full((h, w, 3), step * i, np.uint8) for i in range(n)])


def level(frame: np.ndarray, step: int = 10) -> int:
    return int(round(frame.astype(float).mean() / step))


def write_pngs(folder, frames, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / (names[i] if names else f"{i}.png"))
    return folder


def bands(w: int, h: int) -> np.ndarray:
    """Thirds from the top: red, green, blue."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 3, :, 0] = 255
    img[h // 3: 2 * h // 3, :, 1] = 255
    img[2 * h // 3:, :, 2] = 255
    return img


# -- folders and globs ---------------------------------------------------------------------
def test_folder_frames_come_in_natural_order(tmp_path):
    names = ["frame_10.png", "frame_2.png", "frame_1.jpg", "frame_3.webp"]  # 1, 2, 3, 10
    frames = grey_frames(4)
    write_pngs(tmp_path / "f", frames[[3, 1, 0, 2]], names)
    (tmp_path / "f" / "notes.txt").write_text("not a frame")
    clip = read_clip(tmp_path / "f")
    assert clip.kind == "frames" and [p.name for p in clip.files] == [
        "frame_1.jpg", "frame_2.png", "frame_3.webp", "frame_10.png"]
    assert [level(f) for f in clip.frames] == [0, 1, 2, 3]
    assert clip.times is None


def test_a_quoted_glob_selects_frames(tmp_path):
    write_pngs(tmp_path / "f", grey_frames(12))
    clip = read_clip(str(tmp_path / "f" / "1*.png"))  # 1, 10, 11
    assert [p.name for p in clip.files] == ["1.png", "10.png", "11.png"]
    assert [level(f) for f in clip.frames] == [1, 10, 11]


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no images"),
    ("glob", "no images match"),
    ("mixed", "the frames differ in size (32x20 and 40x20"),
    ("broken", "cannot read"),
])
def test_bad_frame_folders_are_one_line_errors(tmp_path, case, message):
    folder = tmp_path / "f"
    folder.mkdir()
    spec = folder
    if case == "glob":
        spec = str(folder / "*.png")
    elif case == "mixed":
        write_pngs(folder, grey_frames(2))
        Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(folder / "2.png")
    elif case == "broken":
        write_pngs(folder, grey_frames(2))
        (folder / "2.png").write_bytes(b"not an image")
    with pytest.raises(VmcError) as err:
        read_clip(spec, (16, 10))
    assert message in err.value.message and "\n" not in err.value.message
    if case == "broken":
        assert "2.png" in err.value.message


# -- crop ----------------------------------------------------------------------------------
def test_center_box_by_hand():
    assert center_box(360, 640, 64 / 40) == (0, 207, 360, 432)  # 360 / 1.6 = 225 rows, centred
    assert center_box(640, 360, 1.0) == (140, 0, 500, 360)
    assert center_box(64, 40, 1.6) == (0, 0, 64, 40)


@pytest.mark.parametrize("as_video", [False, True])
def test_center_crop_keeps_the_middle_of_a_portrait_clip(tmp_path, as_video):
    frames = np.stack([bands(360, 640)] * 3)
    spec = write_video(frames, tmp_path / "portrait.mp4") if as_video else write_pngs(tmp_path / "p", frames)
    cropped = read_clip(spec, (64, 40), "center").frames
    squashed = read_clip(spec, (64, 40), "none").frames
    assert cropped.shape == squashed.shape == (3, 40, 64, 3)
    # The middle 225 of 640 rows are all in the green band (rows 213-426).
    mean = cropped.reshape(-1, 3).mean(0)
    assert mean[1] > 200 and mean[0] < 40 and mean[2] < 40
    # Squashed, all three bands are there, a third of the height each.
    rows = squashed[0].mean(1)
    assert rows[2, 0] > 200 and rows[20, 1] > 200 and rows[37, 2] > 200


# -- frame rate and start ---------------------------------------------------------------------
def synthetic(n: int, fps: float) -> Clip:
    return Clip(grey_frames(n), "video", times=[i / fps for i in range(n)])


def test_fps_resamples_on_the_source_time_axis():
    clip = synthetic(24, 8)
    assert pick_frames(clip, 4, fps=4).indexes == [0, 2, 4, 6]
    # 3 fps from 8: wanted 0, 1/3, 2/3, 1 s; nearest source frames at 0, 0.375, 0.625, 1.0 s.
    picked = pick_frames(clip, 4, fps=3)
    assert picked.indexes == [0, 3, 5, 8] and picked.times == [0.0, 0.375, 0.625, 1.0]
    assert pick_frames(clip, 8, fps=4, stride=1).indexes == [0, 2, 4, 6, 8, 10, 12, 14]  # two seconds
    assert pick_frames(clip, 3, fps=16).indexes in ([0, 0, 1], [0, 1, 1])  # faster than the source repeats


def test_start_in_seconds_and_frames():
    clip = synthetic(24, 8)
    assert pick_frames(clip, 4, start="1.5s").indexes == [12, 13, 14, 15]
    assert pick_frames(clip, 4, start="1.5s", fps=4).indexes == [12, 14, 16, 18]
    assert pick_frames(clip, 4, start="3", fps=4, stride=2).indexes == [6, 10, 14, 18]
    assert pick_frames(clip, 2, start=5).indexes == [5, 6]
    assert parse_start("0.25s") == (0, 0.25) and parse_start("7") == (7, None)
    for bad in ("-1", "x", "-2s", "1.5"):
        with pytest.raises(VmcError, match="neither a frame number nor seconds"):
            parse_start(bad)
    with pytest.raises(VmcError, match="past the end"):
        pick_frames(clip, 2, start="4s")
    with pytest.raises(VmcError, match="the clip has 12 frames at 4 fps, but 8 frames with stride 2"):
        pick_frames(clip, 8, fps=4, stride=2)


def test_frames_have_no_frame_rate(tmp_path):
    clip = read_clip(write_pngs(tmp_path / "f", grey_frames(4)))
    with pytest.raises(VmcError, match="a folder of frames has no frame rate"):
        pick_frames(clip, 2, fps=4)
    with pytest.raises(VmcError, match="a folder of frames has no frame rate"):
        pick_frames(clip, 2, start="0.5s")
    assert pick_frames(clip, 2, start="2").indexes == [2, 3]


def test_video_times_come_from_the_file(tmp_path):
    path = write_video(grey_frames(16, 64, 40, step=15), tmp_path / "c.mp4", fps=8)
    clip = read_clip(path, (32, 20))
    assert clip.times == pytest.approx([i / 8 for i in range(16)])
    picked = pick_frames(clip, 3, fps=2, start="0.5s")  # 0, 0.5, 1, 1.5 s at 2 fps; from the second
    assert picked.indexes == [4, 8, 12] and picked.times == [0.5, 1.0, 1.5]
    assert [level(clip.frames[i], 15) for i in picked.indexes] == [4, 8, 12]


# -- through the CLI -------------------------------------------------------------------------
def test_tune_on_a_folder_of_frames_records_it(run_cli, tmp_path, vmc_home):
    from make_clip import moving_disc

    folder = write_pngs(tmp_path / "frames", moving_disc(10, 96, 160, seed=1))  # portrait
    r = run_cli("tune", folder, "-p", "a disc", "--steps", "1", "--name", "f", "--start", "2")
    assert r.code == 0, r
    source = ProfileStore().manifest("f")["source"]
    assert source["kind"] == "frames" and source["crop"] == "center"
    assert source["frame_indexes"] == list(range(2, 10))
    assert source["frame_files"] == [f"{i}.png" for i in range(2, 10)]
    assert source["native_size"] == [96, 160]
    assert "frame_times" not in source


def test_tune_fps_and_seconds_are_recorded(run_cli, tmp_path, vmc_home):
    from make_clip import moving_disc

    clip = write_video(moving_disc(64, 128, 80, seed=2), tmp_path / "c.mp4", fps=16)  # 4 s
    r = run_cli("tune", clip, "-p", "a disc", "--steps", "1", "--name", "v", "--fps", "4", "--start", "1s",
                "--crop", "none")
    assert r.code == 0, r
    source = ProfileStore().manifest("v")["source"]
    assert source["kind"] == "video" and source["fps"] == 4 and source["start"] == "1s"
    assert source["frame_indexes"] == [16 + 4 * i for i in range(8)]  # every 4th of 16 fps, from 1 s
    assert source["frame_times"] == [1.0 + 0.25 * i for i in range(8)]
    assert source["crop"] == "none"


def test_tune_refuses_bad_crop_and_short_clips(run_cli, tmp_path, clip_path):
    r = run_cli("tune", clip_path, "-p", "a disc", "--crop", "middle")
    assert r.code == 1 and "unknown --crop 'middle'" in r.stderr
    r = run_cli("tune", clip_path, "-p", "a disc", "--fps", "2")  # 12 frames at 8 fps: 1.4 s, 3 frames at 2 fps
    assert r.code == 1 and "at 2 fps" in r.stderr


def test_eval_source_takes_a_folder_of_jpegs(run_cli, tmp_path, clip_path):
    from make_clip import moving_disc

    folder = tmp_path / "src"
    folder.mkdir()
    for i, frame in enumerate(moving_disc(12, 128, 80, seed=0)):
        Image.fromarray(frame).save(folder / f"{i}.jpg", quality=95)
    r = run_cli("eval", clip_path, "--source", folder, "--no-clip", "--json")
    assert r.code == 0, r
    assert r.json()["motion_fidelity"] > 0.9  # the same motion, read from frames and from the video
    assert len(read_frames(folder)) == 12
