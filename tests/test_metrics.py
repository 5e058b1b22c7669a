"""CLIP metrics: key-frame indexes, the pure cosine functions, and an end-to-end
run of ``clip_scores`` on a tiny random CLIP model built offline.

The tiny model comes from ``tests/tiny_models.py`` through the
``tiny_clip_dir`` fixture in ``conftest.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from vmc_cli.method import metrics
from vmc_cli.errors import VmcError
from vmc_cli.method.metrics import (
    clip_scores,
    keyframe_indexes,
    load_clip,
    temporal_consistency,
    text_alignment,
)

from tiny_models import TINY_MAX_TOKENS, TINY_MEAN, TINY_STD  # noqa: F401  (tiny CLIP, see conftest)


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    return load_clip(str(tiny_clip_dir))


def _frames(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _reference_scores(model, processor, frames: np.ndarray, prompt: str) -> tuple[float, float]:
    """Independent computation: CLIP preprocessing by hand (the frames are
    already 32x32, so resize and crop are the identity), CLIPModel.forward's
    own projected embeddings, cosines in numpy."""
    x = frames.astype(np.float64) / 255.0
    x = (x - np.array(TINY_MEAN)) / np.array(TINY_STD)
    pixel_values = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).float()
    ids = processor.tokenizer([prompt], return_tensors="pt", truncation=True)
    with torch.no_grad():
        out = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], pixel_values=pixel_values)
    t = out.text_embeds[0].double().numpy()
    im = out.image_embeds.double().numpy()
    t = t / np.linalg.norm(t)
    im = im / np.linalg.norm(im, axis=1, keepdims=True)
    ta = float(np.mean(im @ t))
    pairs = [float(im[i] @ im[j]) for i, j in itertools.combinations(range(len(im)), 2)]
    return ta, float(np.mean(pairs))


# ---------------------------------------------------------------- key-frames


def test_keyframe_indexes_paper_setting() -> None:
    idx = keyframe_indexes(29, 8)
    assert idx == [0, 4, 8, 12, 16, 20, 24, 28]
    assert [i + 1 for i in idx] == [1, 5, 9, 13, 17, 21, 25, 29]  # the paper's 1-based list


@pytest.mark.parametrize(
    ("frames", "keyframes", "expected"),
    [
        (8, 8, list(range(8))),
        (15, 8, [0, 2, 4, 6, 8, 10, 12, 14]),
        (9, 3, [0, 4, 8]),
        (2, 2, [0, 1]),
        (1, 1, [0]),
    ],
)
def test_keyframe_indexes_general(frames: int, keyframes: int, expected: list[int]) -> None:
    assert keyframe_indexes(frames, keyframes) == expected


@pytest.mark.parametrize(
    ("frames", "keyframes"),
    [(28, 8), (30, 8), (8, 9), (10, 1), (0, 0), (5, 0), (-3, 2)],
)
def test_keyframe_indexes_bad(frames: int, keyframes: int) -> None:
    with pytest.raises(VmcError) as err:
        keyframe_indexes(frames, keyframes)
    assert str(keyframes) in err.value.message


def test_keyframe_indexes_message_explains_spacing() -> None:
    with pytest.raises(VmcError) as err:
        keyframe_indexes(28, 8)
    assert "27/7" in err.value.message
    assert err.value.hint and "29" in err.value.hint


# ---------------------------------------------------------------- pure functions


def test_temporal_consistency_identical_is_one() -> None:
    e = torch.tensor([[0.3, -1.2, 2.0, 0.5]]).repeat(5, 1)
    assert temporal_consistency(e) == pytest.approx(1.0, abs=1e-12)


def test_temporal_consistency_scale_invariant() -> None:
    e = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [10.0, 20.0, 30.0]])
    assert temporal_consistency(e) == pytest.approx(1.0, abs=1e-12)


def test_temporal_consistency_orthogonal_is_zero() -> None:
    assert temporal_consistency(torch.tensor([[1.0, 0.0], [0.0, 5.0]])) == pytest.approx(0.0, abs=1e-12)


def test_temporal_consistency_opposite_is_minus_one() -> None:
    assert temporal_consistency(torch.tensor([[1.0, 1.0], [-2.0, -2.0]])) == pytest.approx(-1.0, abs=1e-12)


def test_temporal_consistency_three_frames_by_hand() -> None:
    # a = (1,0,0), b = (1,1,0) unnormalised, c = (0,0,2)
    # cos(a,b) = 1/sqrt(2), cos(a,c) = 0, cos(b,c) = 0 -> mean over 3 pairs = 1/(3 sqrt 2)
    e = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    assert temporal_consistency(e) == pytest.approx(1.0 / (3.0 * math.sqrt(2.0)), abs=1e-12)


def test_temporal_consistency_uses_only_distinct_pairs() -> None:
    # cos(a,b) = 0.6 (3-4-5), cos(a,c) = 1, cos(b,c) = 0.6 -> mean 2.2/3;
    # including self-pairs (diagonal) would give a different number.
    e = torch.tensor([[1.0, 0.0], [0.6, 0.8], [3.0, 0.0]], dtype=torch.float64)
    assert temporal_consistency(e) == pytest.approx(2.2 / 3.0, abs=1e-12)


def test_temporal_consistency_needs_two() -> None:
    with pytest.raises(ValueError):
        temporal_consistency(torch.ones(1, 4))


def test_text_alignment_by_hand() -> None:
    text = torch.tensor([2.0, 0.0])  # direction (1, 0)
    images = torch.tensor([[1.0, 0.0], [0.0, 3.0], [3.0, 4.0], [-1.0, 0.0]])
    # cosines: 1, 0, 0.6, -1 -> mean 0.15
    assert text_alignment(text, images) == pytest.approx(0.15, abs=1e-12)
    assert text_alignment(text[None], images) == pytest.approx(0.15, abs=1e-12)


def test_text_alignment_single_image_and_mismatch() -> None:
    assert text_alignment(torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 0.0]])) == pytest.approx(
        1 / math.sqrt(2), abs=1e-12
    )
    with pytest.raises(ValueError):
        text_alignment(torch.ones(3), torch.ones(2, 4))


# ---------------------------------------------------------------- loading


def test_eval_scores_with_the_papers_clip_unless_told_otherwise(monkeypatch, run_cli, clip_path, tiny_clip_dir) -> None:
    """``vmc eval`` without --clip-model loads the paper's CLIP (ViT-L/14) and records it;
    the tiny model stands in for it here, so nothing is downloaded."""
    asked = []

    def load(model, device="cpu"):
        asked.append(model)
        return load_clip(str(tiny_clip_dir), device)

    monkeypatch.setattr(metrics, "load_clip", load)
    res = run_cli("eval", clip_path, "--prompt", "a disc is moving", "--json")
    assert res.code == 0, res
    assert asked == ["openai/clip-vit-large-patch14"]
    assert res.json()["clip_model"] == "openai/clip-vit-large-patch14"


def test_module_import_is_light() -> None:
    """torch/transformers are imported inside the functions, not at import time."""
    import subprocess
    import sys

    code = (
        "import sys; import vmc_cli.method.metrics; "
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_load_clip_missing_hub_id_offline(monkeypatch) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(VmcError) as err:
        load_clip("vmc-tests-nobody/clip-that-does-not-exist")
    assert "vmc-tests-nobody/clip-that-does-not-exist" in err.value.message
    assert "\n" not in err.value.message
    assert "hf download vmc-tests-nobody/clip-that-does-not-exist" in err.value.hint
    assert "--clip-model" in err.value.hint


def test_load_clip_missing_folder(tmp_path) -> None:
    missing = tmp_path / "no-such-clip"
    with pytest.raises(VmcError) as err:
        load_clip(str(missing))
    assert str(missing) in err.value.message
    assert "--clip-model" in err.value.hint


def test_load_clip_folder_without_model(tmp_path) -> None:
    (tmp_path / "readme.txt").write_text("not a model")
    with pytest.raises(VmcError) as err:
        load_clip(str(tmp_path))
    assert str(tmp_path) in err.value.message


def test_load_clip_tiny(tiny_clip) -> None:
    model, processor = tiny_clip
    assert not model.training
    assert model.config.projection_dim == 16
    assert processor.tokenizer.model_max_length == TINY_MAX_TOKENS


# ---------------------------------------------------------------- end to end


def test_clip_scores_matches_independent_computation(tiny_clip_dir, tiny_clip) -> None:
    frames = _frames(5, seed=1)
    prompt = "a cat is running"
    scores = clip_scores(frames, prompt, str(tiny_clip_dir))
    ta, tc = _reference_scores(*tiny_clip, frames, prompt)
    assert scores["frames"] == 5
    assert isinstance(scores["text_alignment"], float)
    assert isinstance(scores["temporal_consistency"], float)
    assert scores["text_alignment"] == pytest.approx(ta, abs=1e-5)
    assert scores["temporal_consistency"] == pytest.approx(tc, abs=1e-5)


def test_clip_scores_accepts_loaded_tuple_and_batches(tiny_clip, monkeypatch) -> None:
    frames = _frames(7, seed=2)
    prompt = "a cat is jumping"
    whole = clip_scores(frames, prompt, tiny_clip)
    monkeypatch.setattr(metrics, "_IMAGE_BATCH", 3)  # 3 + 3 + 1
    batched = clip_scores(frames, prompt, tiny_clip)
    ta, tc = _reference_scores(*tiny_clip, frames, prompt)
    for s in (whole, batched):
        assert s["text_alignment"] == pytest.approx(ta, abs=1e-5)
        assert s["temporal_consistency"] == pytest.approx(tc, abs=1e-5)
        assert s["frames"] == 7


def test_clip_scores_depends_on_prompt(tiny_clip) -> None:
    frames = _frames(3, seed=3)
    a = clip_scores(frames, "a cat is running", tiny_clip)
    b = clip_scores(frames, "zebra", tiny_clip)
    assert a["text_alignment"] != pytest.approx(b["text_alignment"], abs=1e-6)
    assert a["temporal_consistency"] == pytest.approx(b["temporal_consistency"], abs=1e-9)


def test_clip_scores_identical_frames(tiny_clip) -> None:
    frames = np.repeat(_frames(1, seed=4), 6, axis=0)
    scores = clip_scores(frames, "a cat", tiny_clip)
    assert scores["temporal_consistency"] == pytest.approx(1.0, abs=1e-6)
    assert scores["frames"] == 6


def test_clip_scores_non_square_frames_and_long_prompt(tiny_clip) -> None:
    # 40x64 frames go through resize + center crop; a prompt longer than the
    # tiny model's 16 positions must be truncated, not crash.
    # The long prompt scores exactly as its first tokens do: what truncation keeps.
    frames = np.random.default_rng(5).integers(0, 256, (4, 40, 64, 3), dtype=np.uint8)
    _, processor = tiny_clip
    long = "a cat is " * 20  # whole-word tokens, so the kept text tokenizes back to the same ids
    ids = processor.tokenizer(long, truncation=True)["input_ids"]
    assert len(ids) == TINY_MAX_TOKENS  # it really is longer than the model takes
    kept = processor.tokenizer.decode(ids, skip_special_tokens=True)
    assert processor.tokenizer(kept, truncation=True)["input_ids"] == ids
    scores = clip_scores(frames, long, tiny_clip)
    assert scores["frames"] == 4
    assert scores["text_alignment"] == pytest.approx(clip_scores(frames, kept, tiny_clip)["text_alignment"], abs=1e-6)
    assert scores["text_alignment"] != pytest.approx(clip_scores(frames, "a cat", tiny_clip)["text_alignment"],
                                                     abs=1e-6)
    assert scores["temporal_consistency"] == pytest.approx(clip_scores(frames, kept, tiny_clip)["temporal_consistency"])


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((4, 32, 32), dtype=np.uint8),  # no channel axis
        np.zeros((4, 32, 32, 4), dtype=np.uint8),  # RGBA
        np.zeros((1, 32, 32, 3), dtype=np.uint8),  # one frame: no pairs
        np.zeros((4, 32, 32, 3), dtype=np.float32),  # not uint8
    ],
)
def test_clip_scores_bad_frames(tiny_clip, frames) -> None:
    with pytest.raises(VmcError):
        clip_scores(frames, "a cat", tiny_clip)


def test_clip_scores_on_keyframes_of_interpolated_video(tiny_clip) -> None:
    video = _frames(29, seed=6)
    key = video[keyframe_indexes(29, 8)]
    scores = clip_scores(key, "a cat", tiny_clip)
    ta, tc = _reference_scores(*tiny_clip, video[::4], "a cat")
    assert scores["frames"] == 8
    assert scores["text_alignment"] == pytest.approx(ta, abs=1e-5)
    assert scores["temporal_consistency"] == pytest.approx(tc, abs=1e-5)
