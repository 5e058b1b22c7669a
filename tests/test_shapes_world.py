"""The "shapes" world clip generator (backends/vmc_shapes/world.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vmc_shapes import world
from vmc_shapes.world import (
    COLOURS,
    SHAPES,
    centroid_path,
    classify_appearance,
    describe_path,
    held_out_paths,
    is_training_path,
    make_clip,
    random_path,
    render,
)

COMBOS = list(itertools.product(SHAPES, COLOURS))


def test_vocabulary():
    assert SHAPES == ("circle", "square", "triangle")
    assert COLOURS == {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
                       "yellow": (255, 255, 0), "white": (255, 255, 255)}
    assert len(COMBOS) == 15


def test_make_clip_is_deterministic_by_seed():
    a, cap_a, info_a = make_clip(3)
    b, cap_b, info_b = make_clip(3)
    assert np.array_equal(a, b) and cap_a == cap_b
    np.testing.assert_array_equal(info_a["path"], info_b["path"])
    c, _, info_c = make_clip(4)
    assert not np.array_equal(info_a["path"], info_c["path"])
    # a Generator works too, and advances
    gen = np.random.default_rng(3)
    d, cap_d, _ = make_clip(gen)
    assert np.array_equal(a, d) and cap_d == cap_a
    assert not np.array_equal(make_clip(gen)[0], a)


def test_clip_format_and_caption():
    frames, cap, info = make_clip(0)
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    assert cap == f"a {info['colour']} {info['shape']} is moving"
    assert info["path"].shape == (8, 2) and info["size"] == (32, 32)
    frames, _, info = make_clip(0, size=(48, 40), frames=5, shape="square", colour="blue")
    assert frames.shape == (5, 40, 48, 3)
    assert info["shape"] == "square" and info["colour"] == "blue"
    # only black and the shape's colour (no anti-aliasing)
    values = {tuple(v) for v in frames.reshape(-1, 3)}
    assert values == {(0, 0, 0), (0, 0, 255)}
    with pytest.raises(ValueError):
        make_clip(0, shape="star")
    with pytest.raises(ValueError):
        make_clip(0, colour="purple")


def test_all_combinations_drawn():
    seen = {(info["shape"], info["colour"]) for _, _, info in (make_clip(s) for s in range(150))}
    assert seen == set(COMBOS)


@pytest.mark.parametrize(("shape", "colour"), COMBOS)
def test_classify_appearance_recovers_caption(shape, colour):
    """Every combination, at 32x32, on random training clips and per frame."""
    for seed in range(3):
        frames, cap, info = make_clip(seed, shape=shape, colour=colour)
        assert classify_appearance(frames) == (colour, shape)
        assert cap.split()[1:3] == [colour, shape]
        for frame in frames:
            assert classify_appearance(frame) == (colour, shape)


def test_classify_shape_at_many_positions_and_sizes():
    rng = np.random.default_rng(0)
    for size in (32, 33, 40, 48, 64, (64, 36)):
        for shape in SHAPES:
            points = rng.uniform(0.2, 0.8, (40, 2))
            frames = render(shape, "white", points, size)
            assert all(classify_appearance(f)[1] == shape for f in frames), (size, shape)


def test_classify_empty_clip():
    assert classify_appearance(np.zeros((2, 32, 32, 3), np.uint8)) == (None, None)


def test_shape_size_is_the_given_fraction_of_the_height():
    for height in (32, 40, 64, 128):
        for shape in SHAPES:
            for fraction in (world.SHAPE_SIZE, *world.SIZE_RANGE):
                frame = render(shape, "red", np.array([[0.5, 0.5]]), (height + 8, height), fraction)[0]
                ys, xs = np.nonzero(frame.max(-1))
                across = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
                assert abs(across - height * fraction) <= 1.5, (height, shape, fraction, across)
    with pytest.raises(ValueError):
        render("circle", "red", np.array([[0.5, 0.5]]), 32, 0.0)


def test_training_clips_draw_their_shape_size_from_the_range():
    sizes = [make_clip(seed)[2]["shape_size"] for seed in range(200)]
    lo, hi = world.SIZE_RANGE
    assert min(sizes) >= lo and max(sizes) <= hi
    assert min(sizes) < lo + 0.02 and max(sizes) > hi - 0.02  # the whole range is used
    assert make_clip(0, shape_size=0.3)[2]["shape_size"] == 0.3


@pytest.mark.parametrize("fraction", [0.22, 0.28, 0.34])
def test_classify_shape_at_every_training_size(fraction):
    rng = np.random.default_rng(3)
    for size in (32, 48, 128):
        for shape in SHAPES:
            frames = render(shape, "white", rng.uniform(0.25, 0.75, (30, 2)), size, fraction)
            assert all(classify_appearance(f)[1] == shape for f in frames), (size, shape, fraction)


def test_describe_path_on_hand_built_paths():
    """Known answers, worked out by hand."""
    # An L: 0.3 right, then 0.4 down in two equal steps.
    s = describe_path(np.array([[0.2, 0.2], [0.5, 0.2], [0.5, 0.4], [0.5, 0.6]]))
    assert s["length"] == pytest.approx(0.7)
    assert s["closure"] == pytest.approx(0.5)  # a 3-4-5 triangle
    # the corner (0.5, 0.2) is 0.3 * 0.4 / 0.5 = 0.24 off the chord from (0.2, 0.2) to (0.5, 0.6)
    assert s["bend"] == pytest.approx(0.24)
    np.testing.assert_allclose(s["turns"], [90.0, 0.0], atol=1e-9)
    assert (s["max_turn"], s["total_turn"], s["direction_changes"]) == (pytest.approx(90), pytest.approx(90), 0)
    np.testing.assert_allclose(s["steps"], [0.3, 0.2, 0.2])
    assert s["min_step_ratio"] == pytest.approx(0.2 / (0.7 / 3))
    assert s["speed_cv"] == pytest.approx(np.std([0.3, 0.2, 0.2]) / (0.7 / 3))
    # There and back with a pause: a U-turn (180 degrees), one stop, closed.
    s = describe_path(np.array([[0.3, 0.5], [0.6, 0.5], [0.6, 0.5], [0.3, 0.5]]))
    assert s["stops"] == 1 and s["closure"] == pytest.approx(0)
    assert s["max_turn"] == pytest.approx(180) and s["direction_changes"] == 1
    assert s["bend"] == pytest.approx(0.3)  # no chord: the farthest distance from the start


def test_centroid_path_recovers_the_path():
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        for size in (32, (48, 32)):
            path = random_path(rng, 8)
            frames = render(shape, "green", path, size)
            w, h = (size, size) if isinstance(size, int) else size
            err_px = np.abs(centroid_path(frames) - path) * np.array([w, h])
            assert err_px.max() < 1.0, (shape, size, err_px.max())
    assert np.isnan(centroid_path(np.zeros((1, 8, 8, 3), np.uint8))).all()


def test_random_paths_stay_inside_and_are_curved_with_varying_speed():
    rng = np.random.default_rng(2)
    for frames in (3, 8, 16, 29):
        for _ in range(25):
            path = random_path(rng, frames)
            assert path.shape == (frames, 2)
            assert path.min() >= world.MARGIN - 1e-9 and path.max() <= 1 - world.MARGIN + 1e-9
            s = describe_path(path)
            assert s["bend"] >= 0.03  # not collinear
            assert s["speed_cv"] >= 0.1  # speed varies
            assert s["stops"] == 0
            assert is_training_path(path)
    # the whole shape stays inside the frame up to a size of 0.28 (the triangle's apex is 2/3 of
    # its size above the centroid; larger ones may touch the edge row, see MARGIN)
    for seed in range(20):
        frames, _, info = make_clip(seed, shape="triangle", shape_size=0.28)
        assert not frames[:, 0].any() and not frames[:, -1].any()
        assert not frames[:, :, 0].any() and not frames[:, :, -1].any()
    with pytest.raises(ValueError):
        random_path(rng, 2)


def test_random_path_is_deterministic():
    np.testing.assert_array_equal(random_path(5, 8), random_path(5, 8))
    np.testing.assert_array_equal(random_path(np.random.default_rng(5), 8), random_path(5, 8))


@pytest.mark.parametrize("frames", [4, 8, 16, 29])
def test_held_out_paths_differ_from_training_paths(frames):
    paths = held_out_paths(frames)
    assert set(paths) == {"circle", "zigzag", "figure_eight", "bounce", "stop_and_go"}
    for name, path in paths.items():
        assert path.shape == (frames, 2), name
        assert path.min() >= world.MARGIN - 1e-9 and path.max() <= 1 - world.MARGIN + 1e-9, name
        assert not is_training_path(path), name
    stats = {name: describe_path(p) for name, p in paths.items()}
    assert stats["circle"]["closure"] < 1e-9 and stats["figure_eight"]["closure"] < 1e-9  # back to the start
    assert stats["zigzag"]["direction_changes"] >= 2
    assert stats["bounce"]["max_turn"] > 60
    assert stats["stop_and_go"]["stops"] >= 1
    # random paths never do these things
    rng = np.random.default_rng(frames)
    for _ in range(50):
        s = describe_path(random_path(rng, frames))
        assert s["closure"] >= 0.25 and s["direction_changes"] == 0 and s["max_turn"] <= 60 and s["stops"] == 0


def test_held_out_paths_render():
    for name, path in held_out_paths(8).items():
        frames, cap, info = make_clip(0, path=path, shape="circle", colour="yellow")
        assert frames.shape == (8, 32, 32, 3)
        assert classify_appearance(frames) == ("yellow", "circle")
        assert np.abs(centroid_path(frames) - path).max() * 32 < 1.0, name


def _polygon(shape: str, size: int, d: float, angle: float, cx: float, cy: float) -> np.ndarray:
    """A square or an apex-up triangle of size d px turned by ``angle`` degrees, rasterised by
    PIL (not the world's renderer): a frame (size, size, 3)."""
    from PIL import Image, ImageDraw

    pts = (np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) if shape == "square"
           else np.array([[0, -2 / 3], [0.5, 1 / 3], [-0.5, 1 / 3]])) * d
    a = np.deg2rad(angle)
    pts = pts @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + [cx, cy]
    img = Image.new("RGB", (size, size))
    ImageDraw.Draw(img).polygon([tuple(p) for p in pts], fill=(255, 255, 255))
    return np.asarray(img)


@pytest.mark.parametrize("shape", ["square", "triangle"])
def test_classify_shape_of_turned_shapes(shape):
    """A shape drawn a little turned, as a model draws it, is still that shape."""
    rng = np.random.default_rng(5)
    for size in (32, 48, 64):
        for fraction in (0.22, 0.28, 0.34):
            for angle in (-25, -15, -8, -4, 4, 8, 15, 25):
                frame = _polygon(shape, size, fraction * size, angle, *(size / 2 + rng.uniform(-2, 2, 2)))
                assert classify_appearance(frame)[1] == shape, (size, fraction, angle)


def test_classify_shape_measures_by_hand():
    """A disc of radius 12 and a 24 px square at 20 degrees: the rule's measures are near their
    continuous values (4 pi and 16) and on the right sides of the line."""
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    disc = (xx - 32) ** 2 + (yy - 32) ** 2 <= 12 ** 2
    turned = _polygon("square", 64, 24, 20, 32, 32).max(-1) > 127
    import cv2

    for mask, ideal, shape in ((disc, 4 * np.pi, "circle"), (turned, 16.0, "square")):
        _, hull = world._outline(mask)
        ratio = cv2.arcLength(hull, True) ** 2 / cv2.contourArea(hull)
        assert abs(ratio - ideal) < 0.9, (shape, ratio)
        assert world._classify_shape(mask) == shape
