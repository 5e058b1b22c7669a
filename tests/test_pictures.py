"""Pictures of the motion: generate --side-by-side, eval --plot."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vmc_cli.io.pictures import plot_tracks, side_by_side
from vmc_cli.store.profiles import ProfileStore
from vmc_cli.io.video import read_frames


def flat(n, h, w, colour):
    return np.tile(np.array(colour, np.uint8), (n, h, w, 1))


def test_side_by_side_by_hand():
    source = np.concatenate([flat(1, 4, 6, (255, 0, 0)), flat(1, 4, 6, (0, 255, 0))])  # 2 frames, 6x4
    generated = flat(3, 2, 2, (0, 0, 255))  # 3 frames, 2x2
    out = side_by_side(source, generated, height=8, gap=2)
    assert out.shape == (3, 8, 12 + 2 + 8, 3)  # 6x4 -> 12x8, 2x2 -> 8x8
    assert (out[:, :, 12:14] == 128).all()  # the grey gap
    assert (out[:, :, 14:] == (0, 0, 255)).all()
    # frame i shows the source at the same relative time: 0 -> first, 1 -> round(0.5) = 0, 2 -> last
    assert (out[0, :, :12] == (255, 0, 0)).all() and (out[2, :, :12] == (0, 255, 0)).all()


@pytest.mark.slow
def test_generate_side_by_side(run_cli, clip_path, tmp_path, vmc_home):
    import torch

    from vmc_cli.models.plugins import get_backend

    assert run_cli("tune", clip_path, "-p", "a disc", "--steps", "1", "--name", "d").code == 0
    common = ("--stages", "keyframes", "--steps", "2", "--invert-steps", "2")
    r = run_cli("generate", "d", "-p", "a cube", "-o", tmp_path / "v.mp4", "--side-by-side", tmp_path / "sbs.gif",
                *common, "--json")
    assert r.code == 0, r
    assert r.json()["videos"][0]["side_by_side"] == str(tmp_path / "sbs.gif")
    pair = read_frames(tmp_path / "sbs.gif")
    video = read_frames(tmp_path / "v.mp4")
    assert pair.shape == (8, 128, 2 * 205 + 4, 3)  # 64x40 key-frames enlarged to 205x128, twice, and the gap
    # the left half is the profile's clip as the model saw it
    backend = get_backend("tiny")
    backend.load()
    clip = ProfileStore().load("d", "clip.safetensors")["clip"]
    with torch.no_grad():
        expected = side_by_side(backend.model_to_frames(clip), video)
    assert np.abs(pair[:, :, :205].astype(int) - expected[:, :, :205].astype(int)).mean() < 6  # GIF palette
    (tmp_path / "p.txt").write_text("a cube\na ball\n")
    r = run_cli("generate", "d", "--prompt-file", tmp_path / "p.txt", "-o", tmp_path / "batch",
                "--side-by-side", tmp_path / "pairs", *common)
    assert r.code == 0, r
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == [
        "000_cube_side_by_side.gif", "001_ball_side_by_side.gif"]


def test_plot_tracks_draws_each_moving_track(tmp_path):
    t = np.linspace(0, 1, 5)
    right = np.stack([np.stack([10 + 20 * t, 30 + 0 * t], -1) + [0, 5 * k] for k in range(3)])  # 3 tracks
    down = np.stack([np.stack([40 + 0 * t, 10 + 20 * t], -1)])
    fig = plot_tracks({"source": right, "output": down}, (64, 48), tmp_path / "t.png", title="x")
    lines = fig.axes[0].get_lines()
    src = [ln for ln in lines if ln.get_gid() == "source"]
    out = [ln for ln in lines if ln.get_gid() == "output"]
    assert len(src) == 3 and len(out) == 1
    assert np.allclose(np.stack([src[0].get_xdata(), src[0].get_ydata()], -1), right[0])
    assert np.allclose(np.stack([out[0].get_xdata(), out[0].get_ydata()], -1), down[0])
    assert fig.axes[0].get_ylim() == (48, 0)  # image coordinates
    # each video's mean path, bold, numbered 1..5 at its key-frames
    path = {ln.get_gid(): np.stack([ln.get_xdata(), ln.get_ydata()], -1) for ln in lines if ln.get_gid().endswith("-path")}
    assert np.allclose(path["source-path"], np.stack([10 + 20 * t, 35 + 0 * t], -1))  # mean of offsets 0, 5, 10
    assert np.allclose(path["output-path"], down[0])
    numbers = [(a.get_text(), a.xy) for a in fig.axes[0].texts if a.get_gid() == "source-number"]
    assert [n for n, _ in numbers] == ["1", "2", "3", "4", "5"]
    assert np.allclose([xy for _, xy in numbers], path["source-path"])
    lost = right.copy()
    lost[0, 3:] = np.nan  # a track lost after frame 3 counts where it was found
    fig = plot_tracks({"source": lost}, (64, 48), tmp_path / "t.png")
    mean = [np.stack([ln.get_xdata(), ln.get_ydata()], -1) for ln in fig.axes[0].get_lines() if ln.get_gid() == "source-path"]
    assert np.allclose(mean[0], np.stack([10 + 20 * t, np.r_[35, 35, 35, 37.5, 37.5]], -1))
    loop = np.stack([np.stack([20 + 10 * np.sin(2 * np.pi * t), 20 + 10 * np.cos(2 * np.pi * t) - 10], -1)])
    fig = plot_tracks({"output": loop}, (64, 48), tmp_path / "t.png")  # back where it started
    assert [a.get_text() for a in fig.axes[0].texts] == ["1,5", "2", "3", "4"]
    with Image.open(tmp_path / "t.png") as im:
        assert im.format == "PNG" and im.size[0] > 100


def test_plot_tracks_draws_a_few_tracks_spread_over_the_picture(tmp_path):
    from vmc_cli.io.pictures import representative

    t = np.linspace(0, 1, 4)
    starts = [(x, y) for x in range(0, 60, 6) for y in (5, 40)]  # 20 tracks over the width
    many = np.stack([np.stack([x + 3 * t, y + 0 * t], -1) for x, y in starts])
    picked = representative(many, 5)
    assert len(picked) == 5 and picked[0, 0, 0] == 0 and picked[-1, 0, 0] == 54  # both ends of the spread
    fig = plot_tracks({"source": many, "output": many[:2]}, (64, 48), tmp_path / "t.png")
    lines = fig.axes[0].get_lines()
    assert len([ln for ln in lines if ln.get_gid() == "source"]) == 5
    assert len([ln for ln in lines if ln.get_gid() == "output"]) == 2


def test_eval_plot(run_cli, clip_path, tmp_path):
    r = run_cli("eval", clip_path, "--source", clip_path, "--no-clip", "--plot", tmp_path / "m.png", "--json")
    assert r.code == 0, r
    doc = r.json()
    assert doc["plot"] == str(tmp_path / "m.png") and "tracks" not in doc
    with Image.open(tmp_path / "m.png") as im:
        assert im.format == "PNG"
    r = run_cli("eval", clip_path, "-p", "a disc", "--plot", tmp_path / "m.png")
    assert r.code == 1 and "--plot draws the motion against --source" in r.stderr
    r = run_cli("eval", clip_path, "--source", clip_path, "--no-clip", "--plot", tmp_path / "m.jpg")
    assert r.code == 1 and "--plot writes a PNG" in r.stderr


def test_motion_fidelity_keeps_the_tracks_it_scored(clip_path):
    from vmc_cli.method.metrics import motion_fidelity

    frames = read_frames(clip_path)
    m = motion_fidelity(frames, frames, keep_tracks=True)
    assert m["tracks"]["source"].shape[0] == m["tracks_source"] and m["tracks"]["output"].shape[0] == m["tracks_output"]
    assert m["tracks"]["source"].shape[1] == m["motion_frames"]
    assert "tracks" not in motion_fidelity(frames, frames)
