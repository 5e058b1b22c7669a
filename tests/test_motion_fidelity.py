"""Motion fidelity (Yatim et al., CVPR 2024) with Lucas-Kanade point tracks.

Synthetic clips with known motion: a textured square (smoothed noise, so LK
has texture to lock on to) moving over a flat dark background along integer
pixel positions, optionally next to a static textured patch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vmc_cli.method.metrics import motion_fidelity, track_points

SIZE = 64
HALF = 8  # the moving square is 16 x 16 px

# A curved path with varying speed: per-frame steps (dx, dy) in pixels.
STEPS = np.array([[3, 1], [4, 2], [2, 0], [5, -1], [3, -2], [4, -1], [2, 1]])


def _path(steps: np.ndarray, start=(14, 28)) -> np.ndarray:
    return np.concatenate([[start], np.asarray(start) + np.cumsum(steps, axis=0)]).astype(int)


def _texture(seed: int, colour) -> np.ndarray:
    """(2 * HALF, 2 * HALF, 3) uint8: box-blurred noise tinted with ``colour``."""
    rng = np.random.default_rng(seed)
    noise = rng.random((2 * HALF + 2, 2 * HALF + 2))
    smooth = sum(noise[i:i + 2 * HALF, j:j + 2 * HALF] for i in range(3) for j in range(3)) / 9
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (40 + 215 * smooth[..., None] * np.asarray(colour, float)).astype(np.uint8)


def _clip(path: np.ndarray, seed: int = 0, colour=(1.0, 0.6, 0.2), static_patch: bool = False) -> np.ndarray:
    """Frames (len(path), SIZE, SIZE, 3): the textured square centred on each path point."""
    tex = _texture(seed, colour)
    frames = np.full((len(path), SIZE, SIZE, 3), 20, np.uint8)
    if static_patch:
        frames[:, 2:14, 48:62] = _texture(seed + 100, (0.5, 0.9, 0.9))[:12, :14]
    for frame, (x, y) in zip(frames, path):
        frame[y - HALF:y + HALF, x - HALF:x + HALF] = tex
    return frames


def _resample(path: np.ndarray, between: int) -> np.ndarray:
    """``between`` interpolated positions between consecutive points (key-frames kept)."""
    t = np.linspace(0, len(path) - 1, (len(path) - 1) * (between + 1) + 1)
    return np.stack([np.interp(t, np.arange(len(path)), path[:, k]) for k in range(2)], 1).round().astype(int)


SOURCE_PATH = _path(STEPS)
OPPOSITE_PATH = _path(-STEPS, start=(48, 36))  # every step reversed
ORTHOGONAL_PATH = _path(np.stack([-STEPS[:, 1], STEPS[:, 0]], 1), start=(30, 14))  # every step turned 90 degrees


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return _clip(SOURCE_PATH, seed=0, static_patch=True)


def test_paths_stay_inside():
    for p in (SOURCE_PATH, OPPOSITE_PATH, ORTHOGONAL_PATH):
        assert p.min() >= HALF and p.max() <= SIZE - HALF


def test_track_points_follow_the_square():
    frames = _clip(SOURCE_PATH)
    tracks, visible = track_points(frames, grid=16)
    assert tracks.shape == (256, 8, 2) and visible.shape == (256, 8)
    assert visible[:, 0].all()
    # Points that start well inside the square move with it, step by step.
    inside = np.abs(tracks[:, 0] - (SOURCE_PATH[0] - 0.5)).max(axis=1) < HALF - 3
    assert inside.sum() >= 4
    on_square = inside & visible.all(axis=1)
    assert on_square.sum() >= 4
    steps = np.diff(tracks[on_square], axis=1)
    np.testing.assert_allclose(np.median(steps, axis=0), STEPS, atol=0.25)
    # Points on the flat background have nothing to track: lost at once.
    far = np.linalg.norm(tracks[:, 0] - SOURCE_PATH[0], axis=1) > 30
    assert not visible[far, 1:].any()


def test_identical_motion_different_appearance(source):
    other = _clip(SOURCE_PATH, seed=7, colour=(0.2, 0.5, 1.0))
    r = motion_fidelity(source, other)
    assert r["motion_fidelity"] > 0.9
    assert r["output_to_source"] > 0.9 and r["source_to_output"] > 0.9
    assert r["motion_fidelity"] == pytest.approx((r["output_to_source"] + r["source_to_output"]) / 2)
    assert r["motion_frames"] == 8
    # The static patch is tracked but not counted: only moving tracks are kept, so the
    # source's count is the same with and without the patch.
    plain = motion_fidelity(_clip(SOURCE_PATH, seed=0, static_patch=False), other)
    tracks, visible = track_points(source, grid=16)
    patch = (tracks[:, 0, 0] >= 48) & (tracks[:, 0, 0] < 62) & (tracks[:, 0, 1] >= 2) & (tracks[:, 0, 1] < 14)
    assert (patch & visible.all(axis=1)).sum() > 0  # the patch's points are tracked ...
    assert r["tracks_source"] == plain["tracks_source"] > 0  # ... and not counted


def test_same_clip_scores_one(source):
    r = motion_fidelity(source, source)
    assert r["motion_fidelity"] == pytest.approx(1.0)
    assert r["tracks_source"] == r["tracks_output"]


def test_opposite_motion(source):
    r = motion_fidelity(source, _clip(OPPOSITE_PATH, seed=3, colour=(0.3, 1.0, 0.3)))
    assert r["motion_fidelity"] < -0.7


def test_orthogonal_motion(source):
    r = motion_fidelity(source, _clip(ORTHOGONAL_PATH, seed=3))
    assert abs(r["motion_fidelity"]) < 0.35


def test_invariant_to_appearance_not_to_motion(source):
    recoloured = _clip(SOURCE_PATH, seed=11, colour=(1.0, 1.0, 1.0))
    same_look_other_motion = _clip(ORTHOGONAL_PATH, seed=0, static_patch=True)
    same = motion_fidelity(source, recoloured)["motion_fidelity"]
    moved = motion_fidelity(source, same_look_other_motion)["motion_fidelity"]
    assert same > 0.9
    assert moved < 0.4
    assert same - moved > 0.5


def test_time_reversed_straight_motion():
    steps = np.tile([[4, 2]], (7, 1))
    forward = _path(steps, start=(12, 16))
    r = motion_fidelity(_clip(forward), _clip(forward[::-1], seed=5))
    assert r["motion_fidelity"] < -0.7


def test_mismatched_frame_counts(source):
    """29 output frames against 8 source frames: compared at frames 0, 4, ..., 28."""
    long = _clip(_resample(SOURCE_PATH, 3), seed=2, colour=(0.9, 0.9, 0.3))
    assert len(long) == 29
    r = motion_fidelity(source, long)
    assert r["motion_frames"] == 8
    assert r["motion_fidelity"] > 0.9
    # and the other way round
    assert motion_fidelity(long, source)["motion_fidelity"] > 0.9


def test_different_sizes():
    """Videos of different sizes are compared at a common size (the source's aspect)."""
    import cv2

    out = np.stack([cv2.resize(f, (96, 96), interpolation=cv2.INTER_LINEAR) for f in _clip(SOURCE_PATH, seed=4)])
    r = motion_fidelity(_clip(SOURCE_PATH), out)
    assert r["motion_size"] == [128, 128]
    assert r["motion_fidelity"] > 0.9


def test_static_videos():
    still = np.repeat(_clip(SOURCE_PATH[:1]), 8, axis=0)
    moving = _clip(SOURCE_PATH)
    r = motion_fidelity(moving, still)  # nothing moves in the video: nothing to compare, not "score 0"
    assert r["tracks_output"] == 0 and r["tracks_source"] > 0
    assert r["motion_fidelity"] is None and r["output_to_source"] is None and r["source_to_output"] is None
    assert "no moving point tracks in the video" in r["warning"]
    r = motion_fidelity(still, moving)
    assert r["motion_fidelity"] is None and "no moving point tracks in the source" in r["warning"]
    r = motion_fidelity(still, still)
    assert r["motion_fidelity"] is None and r["output_to_source"] is None and "either video" in r["warning"]
    assert "warning" not in motion_fidelity(moving, moving)


def test_bad_input():
    from vmc_cli.errors import VmcError

    with pytest.raises(VmcError, match="at least 2 frames"):
        motion_fidelity(_clip(SOURCE_PATH[:1]), _clip(SOURCE_PATH))
    with pytest.raises(VmcError, match="uint8"):
        motion_fidelity(_clip(SOURCE_PATH).astype(np.float32), _clip(SOURCE_PATH))


# -- vmc eval --source ------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from vmc_cli.io.video import write_video

    folder = tmp_path_factory.mktemp("motion")
    src = write_video(_clip(SOURCE_PATH, static_patch=True), folder / "source.mp4")
    out = write_video(_clip(_resample(SOURCE_PATH, 3), seed=9, colour=(0.2, 0.4, 1.0)), folder / "out.mp4")
    wrong = write_video(_clip(OPPOSITE_PATH, seed=9), folder / "wrong.mp4")
    return src, out, wrong


def _user_error(res, fragment: str) -> None:
    assert res.code == 1, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("Error: ") and fragment in lines[0], res
    assert len(lines) == 2 and lines[1].startswith("Hint: ") and "Traceback" not in res.stderr, res
    assert json.loads(res.stdout) == {"error": lines[0][len("Error: "):], "hint": lines[1][len("Hint: "):], "code": 1}


def test_cli_motion_only(run_cli, clips):
    src, out, wrong = clips
    res = run_cli("eval", out, "--source", src, "--no-clip", "--json")
    assert res.code == 0, res
    doc = res.json()
    assert doc["motion_fidelity"] > 0.9  # 29 frames against 8, through mp4
    assert doc["source"] == str(src) and doc["motion_frames"] == 8
    assert "text_alignment" not in doc and "prompt" not in doc
    assert set(doc) >= {"output_to_source", "source_to_output", "tracks_source", "tracks_output"}
    res = run_cli("eval", wrong, "--source", src, "--no-clip", "--json")
    assert res.code == 0, res
    assert res.json()["motion_fidelity"] < -0.7


def test_cli_motion_human_output(run_cli, clips):
    src, out, _ = clips
    res = run_cli("eval", out, "--source", src, "--no-clip", "-q")
    assert res.code == 0, res
    assert res.stdout.startswith("motion fidelity")
    assert "text alignment" not in res.stdout


def test_cli_no_clip_needs_source(run_cli, clips):
    _, out, _ = clips
    _user_error(run_cli("eval", out, "--no-clip", "--json"), "--no-clip")


def test_cli_prompt_required_without_no_clip(run_cli, clips):
    src, out, _ = clips
    _user_error(run_cli("eval", out, "--source", src, "--json"), "--prompt")


def test_cli_missing_source(run_cli, clips, tmp_path):
    _, out, _ = clips
    _user_error(run_cli("eval", out, "--source", tmp_path / "gone.mp4", "--no-clip", "--json"), "no such file")


def test_cli_clip_and_motion(run_cli, clips, tiny_clip_dir):
    src, out, _ = clips
    res = run_cli("eval", out, "--prompt", "a blue square is moving", "--source", src, "--keyframes", "8",
                  "--clip-model", tiny_clip_dir, "--device", "cpu", "--json")
    assert res.code == 0, res
    doc = res.json()
    assert doc["frame_indexes"] == list(range(0, 29, 4))
    assert doc["motion_fidelity"] > 0.9
    from vmc_cli.method.metrics import clip_scores
    from vmc_cli.io.video import read_frames

    direct = clip_scores(read_frames(out)[doc["frame_indexes"]], "a blue square is moving", str(tiny_clip_dir))
    assert doc["text_alignment"] == pytest.approx(direct["text_alignment"], abs=1e-6)
    json.dumps(doc)


@pytest.mark.parametrize("size", [(96, 64), (192, 128), (256, 256)])
def test_same_motion_at_another_frame_size(size):
    """The same motion drawn at 64x64 and at another frame size scores as the same motion, whichever
    video is the source, with many moving tracks in both: the videos are tracked at one size."""
    from make_clip import moving_disc

    small, other = moving_disc(12, 64, 64), moving_disc(12, *size)
    results = [motion_fidelity(small, other), motion_fidelity(other, small)]
    for r in results:
        assert r["motion_fidelity"] > 0.95, r
        assert min(r["tracks_source"], r["tracks_output"]) >= 30, r
        assert max(r["motion_size"]) == 128
    if size[0] == size[1]:  # same aspect: the two ways round track the very same frames
        assert results[0]["tracks_source"] == results[1]["tracks_output"]
        assert results[0]["tracks_output"] == results[1]["tracks_source"]


def test_cli_warns_when_a_video_does_not_move(run_cli, tmp_path):
    from vmc_cli.io.video import write_video

    moving = write_video(_clip(SOURCE_PATH), tmp_path / "moving.mp4")
    still = write_video(np.repeat(_clip(SOURCE_PATH[:1]), 8, axis=0), tmp_path / "still.mp4")
    res = run_cli("eval", still, "--source", moving, "--no-clip", "--json")
    assert res.code == 0, res
    doc = res.json()
    assert doc["motion_fidelity"] is None and doc["tracks_output"] == 0 and doc["tracks_source"] > 0
    assert "no moving point tracks in the video" in doc["warning"]
    res = run_cli("eval", still, "--source", moving, "--no-clip")
    assert res.code == 0, res
    assert "warning: no moving point tracks in the video" in res.stderr
    assert "n/a" in res.stdout and "0.0000" not in res.stdout
