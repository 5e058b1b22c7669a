"""The "shapes" world: seeded clips of one coloured shape moving on a black background.

A clip shows one shape (circle, square or triangle) filled with one colour
(red, green, blue, yellow or white) on black, between 0.22 and 0.34 of the
frame height across (:data:`SIZE_RANGE`; 0.28 unless said otherwise), whose
centroid follows a path.  Its caption is
``"a <colour> <shape> is moving"``.

Coordinates: a path is a float array (frames, 2) of centroid positions
``(x, y)`` as fractions of the frame's width and height; pixel column ``i``
covers ``[i / W, (i + 1) / W)`` and has its centre at ``(i + 0.5) / W``.

Training paths (:func:`random_path`) are random cubic Bezier curves run with a
random monotone time warp: curved, with varying but never zero speed, no sharp
turns, and never closing on themselves (:func:`is_training_path` states the
rule).  :func:`held_out_paths` gives paths that rule never accepts: a circle,
a zig-zag, a figure eight, a bounce off a wall and stop-and-go.

Rendering is not anti-aliased: a pixel takes the shape's colour when its
centre lies inside the shape, else it stays black.  A clip holds exactly two
RGB values (black and the colour), which keeps colours exact and the
measuring functions (:func:`centroid_path`, :func:`classify_appearance`)
simple; the price is jagged 7-11 pixel shapes at 32x32, which the classifier
is built to handle.

Only numpy is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "COLOURS",
    "SHAPES",
    "SHAPE_SIZE",
    "SIZE_RANGE",
    "MARGIN",
    "make_clip",
    "caption",
    "render",
    "random_path",
    "held_out_paths",
    "describe_path",
    "is_training_path",
    "centroid_path",
    "classify_appearance",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "white": (255, 255, 255),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

SHAPE_SIZE = 0.28
"""Default shape size as a fraction of the frame height: the circle's diameter,
the square's side, the triangle's base and height."""

SIZE_RANGE = (0.22, 0.34)
"""Training clips draw their shape size uniformly from this range (fractions of
the frame height), so the model knows shapes of several sizes."""

MARGIN = 0.2
"""Training paths keep the centroid in ``[MARGIN, 1 - MARGIN]`` on both axes.
The largest training shape reaches at most 2/3 * 0.34 (the triangle's apex) of
the height from its centroid, so it may lose its outermost pixel row at the
margin and otherwise stays inside the frame."""

# The rule for training paths (see is_training_path).
_MIN_LENGTH = 0.3  # total path length (fractions of the frame)
_MIN_CLOSURE = 0.25  # distance from the first to the last position
_MIN_BEND = 0.03  # largest distance of a position from the start-end chord
_MAX_TURN = 60.0  # degrees between consecutive steps
_MAX_TOTAL_TURN = 150.0  # degrees, summed over the path
_MIN_STEP_RATIO = 0.25  # shortest step / mean step
_MIN_SPEED_CV = 0.1  # standard deviation / mean of the step lengths


def _rng(rng_or_seed: Any) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` as (width, height)."""
    if isinstance(size, (int, np.integer)):
        width = height = int(size)
    else:
        width, height = (int(v) for v in size)
    if width < 8 or height < 8:
        raise ValueError(f"frames must be at least 8x8 pixels, got {width}x{height}")
    return width, height


def caption(shape: str, colour: str) -> str:
    """``"a <colour> <shape> is moving"``."""
    return f"a {colour} {shape} is moving"


# -- rendering ------------------------------------------------------------------
def _shape_mask(shape: str, cx: float, cy: float, d: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Pixels whose centre (xx, yy) lies in ``shape`` of size ``d`` px with its area
    centroid at (cx, cy) px."""
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= (d / 2) ** 2
    if shape == "square":
        return (np.abs(xx - cx) <= d / 2) & (np.abs(yy - cy) <= d / 2)
    if shape == "triangle":
        # Isosceles, apex up, base d, height d: the centroid is a third of the height above the base.
        apex = cy - 2 * d / 3
        base = cy + d / 3
        return (yy >= apex) & (yy <= base) & (np.abs(xx - cx) <= (yy - apex) / 2)
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def render(shape: str, colour: str | tuple[int, int, int], path: np.ndarray,
           size: int | tuple[int, int] = 32, shape_size: float = SHAPE_SIZE) -> np.ndarray:
    """Frames (len(path), H, W, 3) uint8 of ``shape`` in ``colour`` following ``path``.

    ``colour``: a name from :data:`COLOURS` or an RGB triple.  ``path``:
    (frames, 2) centroid positions in fractions of width and height.
    ``size``: an int (square frames) or (width, height).  ``shape_size``: the
    shape's size as a fraction of the frame height.
    """
    width, height = _size(size)
    if isinstance(colour, str) and colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; choose one of {', '.join(COLOURS)}")
    rgb = np.asarray(COLOURS[colour] if isinstance(colour, str) else colour, np.uint8)
    path = np.asarray(path, np.float64)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) < 1:
        raise ValueError(f"path must be shaped (frames, 2), got {path.shape}")
    if not 0 < shape_size <= 1:
        raise ValueError(f"shape_size must be in (0, 1], got {shape_size}")
    d = shape_size * height
    yy, xx = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
    frames = np.zeros((len(path), height, width, 3), np.uint8)
    for i, (fx, fy) in enumerate(path):
        frames[i][_shape_mask(shape, fx * width, fy * height, d, xx, yy)] = rgb
    return frames


# -- paths ------------------------------------------------------------------------
def _bezier(ctrl: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points of the cubic Bezier curve with control points ``ctrl`` (4, 2) at parameters ``s``."""
    s = s[:, None]
    return ((1 - s) ** 3 * ctrl[0] + 3 * (1 - s) ** 2 * s * ctrl[1]
            + 3 * (1 - s) * s ** 2 * ctrl[2] + s ** 3 * ctrl[3])


def describe_path(path: np.ndarray) -> dict:
    """Simple measures of a path (fractions of the frame; angles in degrees).

    ``length``: sum of step lengths; ``closure``: distance from first to last
    position; ``bend``: largest distance of a position from the first-to-last
    chord; ``turns``: angle between each pair of consecutive non-zero steps;
    ``max_turn`` and ``total_turn``: their largest value and sum;
    ``direction_changes``: turns above 90 degrees; ``steps``: step lengths;
    ``min_step_ratio``: shortest / mean step; ``speed_cv``: std / mean step;
    ``stops``: steps shorter than 1e-6.
    """
    p = np.asarray(path, np.float64)
    steps = np.diff(p, axis=0)
    lengths = np.linalg.norm(steps, axis=1)
    moving = steps[lengths > 1e-6]
    turns = np.zeros(0)
    if len(moving) >= 2:
        a, b = moving[:-1], moving[1:]
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        turns = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    chord = p[-1] - p[0]
    chord_len = np.linalg.norm(chord)
    if chord_len > 1e-9:
        rel = p - p[0]
        bend = float(np.abs(rel[:, 0] * chord[1] - rel[:, 1] * chord[0]).max() / chord_len)
    else:
        bend = float(np.linalg.norm(p - p[0], axis=1).max())
    mean_step = float(lengths.mean()) if len(lengths) else 0.0
    return {
        "length": float(lengths.sum()),
        "closure": float(chord_len),
        "bend": bend,
        "turns": turns,
        "max_turn": float(turns.max()) if len(turns) else 0.0,
        "total_turn": float(turns.sum()),
        "direction_changes": int((turns > 90).sum()),
        "steps": lengths,
        "min_step_ratio": float(lengths.min() / mean_step) if mean_step > 0 else 0.0,
        "speed_cv": float(lengths.std() / mean_step) if mean_step > 0 else 0.0,
        "stops": int((lengths < 1e-6).sum()),
    }


def is_training_path(path: np.ndarray) -> bool:
    """The rule every path from :func:`random_path` obeys.

    Inside ``[MARGIN, 1 - MARGIN]`` on both axes; long enough (length >= 0.3);
    open (last position >= 0.25 from the first: no loops back to the start);
    curved (some position >= 0.03 off the start-end chord); smooth (no turn
    between consecutive steps above 60 degrees, at most 150 degrees in all:
    no zig-zags, bounces or circles); never stopping (every step >= a quarter
    of the mean step) and with varying speed (step lengths' std / mean >= 0.1).
    """
    p = np.asarray(path, np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
        return False
    if p.min() < MARGIN - 1e-9 or p.max() > 1 - MARGIN + 1e-9:
        return False
    s = describe_path(p)
    return (
        s["length"] >= _MIN_LENGTH
        and s["closure"] >= _MIN_CLOSURE
        and s["bend"] >= _MIN_BEND
        and s["max_turn"] <= _MAX_TURN
        and s["total_turn"] <= _MAX_TOTAL_TURN
        and s["min_step_ratio"] >= _MIN_STEP_RATIO
        and s["speed_cv"] >= _MIN_SPEED_CV
    )


def random_path(rng: Any, frames: int = 8) -> np.ndarray:
    """A random smooth training path: (frames, 2) centroid positions in fractions.

    A cubic Bezier curve with four control points drawn uniformly in
    ``[MARGIN, 1 - MARGIN]^2`` (so the curve stays there), run with a random
    monotone time warp: the curve parameter advances by steps drawn uniformly
    in [0.4, 1.6] (then rescaled to reach 1), so speed varies and never drops
    to zero.  Draws are repeated until :func:`is_training_path` accepts one.
    ``rng``: a numpy Generator or a seed.
    """
    frames = int(frames)
    if frames < 3:
        raise ValueError(f"a curved path needs at least 3 frames, got {frames}")
    gen = _rng(rng)
    for _ in range(10_000):
        ctrl = gen.uniform(MARGIN, 1 - MARGIN, size=(4, 2))
        inc = gen.uniform(0.4, 1.6, size=frames - 1)
        s = np.concatenate([[0.0], np.cumsum(inc)]) / inc.sum()
        path = _bezier(ctrl, s)
        if is_training_path(path):
            return path
    raise RuntimeError("no acceptable random path found")  # pragma: no cover - acceptance is ~25%


def held_out_paths(frames: int = 8) -> dict[str, np.ndarray]:
    """Paths :func:`random_path` never makes (each breaks :func:`is_training_path`).

    - ``circle``: one full turn around the centre, back to the start;
    - ``zigzag``: left to right while switching between two heights every step;
    - ``figure_eight``: a lemniscate, back to the start;
    - ``bounce``: a straight run into the right wall, reflected (a sharp turn);
    - ``stop_and_go``: a straight run that pauses every third step.
    All stay in ``[MARGIN, 1 - MARGIN]``.  ``frames`` >= 4.
    """
    frames = int(frames)
    if frames < 4:
        raise ValueError(f"held-out paths need at least 4 frames, got {frames}")
    k = np.arange(frames)
    u = k / (frames - 1)
    theta = 2 * np.pi * u
    lo, hi = MARGIN + 0.02, 1 - MARGIN - 0.02

    circle = np.stack([0.5 + 0.28 * np.cos(theta), 0.5 + 0.28 * np.sin(theta)], axis=1)
    zigzag = np.stack([lo + (hi - lo) * u, np.where(k % 2 == 0, 0.35, 0.65)], axis=1)
    figure_eight = np.stack([0.5 + 0.28 * np.sin(theta), 0.5 + 0.2 * np.sin(2 * theta)], axis=1)

    # Bounce: constant speed along (1, 0.6) from (0.25, lo), reflected at x = hi; the
    # unfolded run is chosen to end back at x = 0.45.
    run_x = (2 * hi - 0.45) - 0.25
    ux = 0.25 + run_x * u
    bounce = np.stack([np.where(ux <= hi, ux, 2 * hi - ux), lo + 0.6 * run_x * u], axis=1)

    # Stop-and-go: the time warp is flat on every third step.
    inc = np.array([0.0 if i % 3 == 1 else 1.0 for i in range(frames - 1)])
    s = np.concatenate([[0.0], np.cumsum(inc)]) / inc.sum()
    start, end = np.array([lo, 0.3]), np.array([hi, 0.7])
    stop_and_go = start + s[:, None] * (end - start)

    return {"circle": circle, "zigzag": zigzag, "figure_eight": figure_eight,
            "bounce": bounce, "stop_and_go": stop_and_go}


# -- clips ------------------------------------------------------------------------
def make_clip(rng_or_seed: Any, size: int | tuple[int, int] = 32, frames: int = 8,
              shape: str | None = None, colour: str | None = None,
              path: np.ndarray | None = None, shape_size: float | None = None) -> tuple[np.ndarray, str, dict]:
    """A seeded clip: ``(frames uint8 (F, H, W, 3), caption, info)``.

    Shape, colour, shape size (uniform in :data:`SIZE_RANGE`) and path are drawn
    (in that order) from ``rng_or_seed`` (a numpy Generator or a seed) unless
    given; a given ``path`` sets the number of frames.  ``info``: ``{"shape",
    "colour", "shape_size", "path" (F, 2) fractions, "size" (width, height)}``.
    """
    gen = _rng(rng_or_seed)
    if shape is None:
        shape = SHAPES[int(gen.integers(len(SHAPES)))]
    if colour is None:
        colour = list(COLOURS)[int(gen.integers(len(COLOURS)))]
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; choose one of {', '.join(COLOURS)}")
    if shape_size is None:
        shape_size = float(gen.uniform(*SIZE_RANGE))
    path = random_path(gen, frames) if path is None else np.asarray(path, np.float64)
    clip = render(shape, colour, path, size, shape_size)
    info = {"shape": shape, "colour": colour, "shape_size": shape_size, "path": path, "size": _size(size)}
    return clip, caption(shape, colour), info


# -- measuring ----------------------------------------------------------------------
def _foreground(frames: np.ndarray, threshold: int) -> np.ndarray:
    """Non-black pixels: brightest channel above ``threshold``."""
    return np.asarray(frames).max(axis=-1) > threshold


def centroid_path(frames: np.ndarray, threshold: int = 60) -> np.ndarray:
    """(F, 2) mean position of the non-black pixels of each frame, in fractions of
    width and height (the convention of paths); NaN for a frame with none.

    A pixel is non-black when its brightest channel exceeds ``threshold``.
    """
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    _, height, width, _ = arr.shape
    mask = _foreground(arr, threshold)
    out = np.full((len(arr), 2), np.nan)
    for i, m in enumerate(mask):
        ys, xs = np.nonzero(m)
        if len(xs):
            out[i] = ((xs.mean() + 0.5) / width, (ys.mean() + 0.5) / height)
    return out


def _half_balance(mask: np.ndarray, axis: int) -> float:
    """Lighter half / heavier half of the mask's pixel mass, split at the middle of
    its bounding box along ``axis`` (0: top vs bottom, 1: left vs right)."""
    profile = mask.sum(axis=1 - axis).astype(np.float64)
    idx = np.nonzero(profile)[0]
    profile = profile[idx[0]:idx[-1] + 1]
    n = len(profile)
    half = n // 2
    first, second = profile[:half].sum(), profile[n - half:].sum()
    if n % 2:  # the middle row/column is split evenly
        first += profile[half] / 2
        second += profile[half] / 2
    return float(min(first, second) / max(first, second)) if max(first, second) > 0 else 1.0


def _outline(mask: np.ndarray):
    """The largest 8-connected blob of a mask and the convex hull of its pixels' corners
    (the outline the pixels cover, not their centres)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    blob = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(blob)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    return blob, cv2.convexHull(corners.astype(np.float32))


def _classify_shape(mask: np.ndarray) -> str | None:
    """Shape of one frame's foreground mask, or None when there is too little of it.

    Rotation-invariant measures of the largest blob and the convex hull of its pixels:

    - triangle: it fills less than 0.6 of its smallest enclosing rectangle (any angle;
      a triangle ~0.5, a circle ~0.785, a square 1), or at least 0.7 of its smallest
      enclosing triangle (a triangle ~0.75-1 rasterised, a circle at most ~0.64, a square
      0.5), or it is lopsided (its lighter half holds under 0.65 of its heavier half along
      an axis: a triangle about a third, a circle about as much);
    - otherwise square or circle by the hull's isoperimetric ratio perimeter^2 / area:
      4 pi = 12.6 for a circle, 16 for a square at any angle; rasterised circles measure
      12.6-14.1 and squares, rotated ones included, 14.5-17, so the line is at 14.3.

    The first rule of this function (a filled axis-aligned bounding box with three
    corners set) called slightly rotated or soft-cornered squares circles: 1% of squares
    drawn at 4-25 degrees, and 17 of the 20 clearly square clips the shapes model drew
    in its check (tests/test_shapes_world.py has the cases).
    """
    import cv2

    if int(mask.sum()) < 4:
        return None
    blob, hull = _outline(mask)
    area = float(blob.sum())
    width, height = cv2.minAreaRect(hull)[1]
    in_rectangle = area / max(width * height, 1e-9)
    in_triangle = area / max(cv2.minEnclosingTriangle(hull)[0], 1e-9)
    balance = min(_half_balance(blob, 0), _half_balance(blob, 1))
    if in_rectangle < 0.6 or in_triangle >= 0.7 or balance < 0.65:
        return "triangle"
    ratio = cv2.arcLength(hull, True) ** 2 / max(cv2.contourArea(hull), 1e-9)
    return "square" if ratio >= 14.3 else "circle"


def classify_appearance(frames: np.ndarray, threshold: int = 60) -> tuple[str, str | None]:
    """``(colour, shape)`` of the shape in a clip (or a single frame).

    Colour: the name in :data:`COLOURS` nearest (RGB distance) to the mean of
    all non-black pixels of the clip.  Shape: the most frequent per-frame
    answer of the rotation-invariant rule of ``_classify_shape``;
    ties go to the order of :data:`SHAPES`.  ``(None, None)`` / a None shape
    when the clip has no (or too little) foreground.
    """
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    mask = _foreground(arr, threshold)
    if not mask.any():
        return None, None
    mean = arr[mask].astype(np.float64).mean(axis=0)
    names = list(COLOURS)
    refs = np.array([COLOURS[n] for n in names], np.float64)
    colour = names[int(np.argmin(np.linalg.norm(refs - mean, axis=1)))]
    votes = [_classify_shape(m) for m in mask]
    counts = [sum(v == s for v in votes) for s in SHAPES]
    shape = SHAPES[int(np.argmax(counts))] if max(counts) else None
    return colour, shape
