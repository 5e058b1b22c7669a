"""``--motion-scale S``: the tuned parameters blended as W0 + S (W - W0) with the base model's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vmc_cli.jobs import Runtime, load_profile
from vmc_cli.store.profiles import ProfileStore
from vmc_cli.method.tuning import apply_weights, blend_weights
from vmc_cli.io.video import read_frames

COMMON = ("--steps", "2", "--invert-steps", "2", "--stages", "keyframes", "--format", "png")


def test_blend_by_hand():
    unet = torch.nn.Linear(3, 2)
    base = {k: v.detach().clone() for k, v in unet.named_parameters()}
    tuned = {"weight": base["weight"] + 1.0, "bias": base["bias"] - 2.0}
    half = blend_weights(unet, tuned, 0.5)
    assert torch.allclose(half["weight"], base["weight"] + 0.5) and torch.allclose(half["bias"], base["bias"] - 1)
    double = blend_weights(unet, tuned, 2.0)
    assert torch.allclose(double["weight"], base["weight"] + 2.0)
    assert all(torch.equal(blend_weights(unet, tuned, 0)[k], base[k]) for k in base)  # exactly the base model
    assert blend_weights(unet, tuned, 1) is tuned  # exactly the profile
    with pytest.raises(Exception, match="which the model does not have"):
        apply_weights(unet, blend_weights(unet, {"nope": torch.zeros(1)}, 0.5))


def tuned_params(vmc_home, name, scale):
    backend, _ = load_profile(name, store=ProfileStore(vmc_home), runtime=Runtime("cpu"), backend_name=None,
                              stages=("keyframes",), motion_scale=scale)
    return backend, dict(backend.unet.named_parameters())


def test_the_model_gets_the_blended_weights(run_cli, clip_path, vmc_home):
    from safetensors.torch import load_file

    assert run_cli("tune", clip_path, "-p", "a disc", "--steps", "2", "--lr", "1e-2", "--name", "p").code == 0
    weights = load_file(vmc_home / "profiles" / "p" / "weights.safetensors")
    _, base = tuned_params(vmc_home, "p", 0.0)
    _, mid = tuned_params(vmc_home, "p", 0.5)
    _, full = tuned_params(vmc_home, "p", 1.0)
    moved = 0
    for name, w in weights.items():
        assert torch.equal(full[name].detach(), w)
        expected = base[name].detach() + 0.5 * (w - base[name].detach())
        assert torch.allclose(mid[name].detach(), expected, atol=1e-7)
        moved += not torch.equal(w, base[name].detach())
    assert moved == len(weights)  # lr 1e-2: every tuned tensor left the base model


@pytest.mark.slow
def test_scale_zero_is_the_base_model_whatever_the_profile(run_cli, clip_path, tmp_path, monkeypatch):
    """Two profiles of one clip, tuned differently, give the same video at S=0 and different ones at S=1.
    Inversions are cached per scale: a new scale inverts again, the same scale does not."""
    import vmc_cli.method.inversion as inversion

    for name, seed in (("a", "1"), ("b", "2")):
        r = run_cli("tune", clip_path, "-p", "a disc", "--steps", "3", "--lr", "3e-2", "--seed", seed, "--name", name)
        assert r.code == 0, r
    inversions = []
    real = inversion.ddim_invert
    monkeypatch.setattr(inversion, "ddim_invert", lambda *a, **k: inversions.append(1) or real(*a, **k))

    def keyframes(name, scale):
        out = tmp_path / f"{name}-{scale}"
        r = run_cli("generate", name, "-p", "a square", "-o", out, *COMMON, "--motion-scale", scale, "--json")
        assert r.code == 0, r
        assert r.json()["videos"][0]["motion_scale"] == float(scale)
        return read_frames(out)

    a0, b0 = keyframes("a", "0"), keyframes("b", "0")
    assert np.array_equal(a0, b0)
    a1, b1 = keyframes("a", "1"), keyframes("b", "1")
    assert not np.array_equal(a1, b1) and not np.array_equal(a0, a1)
    assert len(inversions) == 4  # one per profile and scale
    assert np.array_equal(keyframes("a", "0"), a0) and len(inversions) == 5  # the slot holds S=1 now: again
    assert np.array_equal(keyframes("a", "0"), a0) and len(inversions) == 5  # and now it is cached
    assert ProfileStore().manifest("a")["inversion"]["motion_scale"] == 0.0


def test_invert_takes_the_scale_and_bad_values_are_refused(run_cli, clip_path):
    assert run_cli("tune", clip_path, "-p", "a disc", "--steps", "1", "--name", "p").code == 0
    r = run_cli("invert", "p", "--steps", "2", "--motion-scale", "0.7", "--json")
    assert r.code == 0, r
    assert r.json()["motion_scale"] == 0.7
    for bad in ("-0.5", "nan", "inf"):
        r = run_cli("generate", "p", "-p", "x", "--motion-scale", bad)
        assert r.code == 1 and "--motion-scale must be a number >= 0" in r.stderr, r


@pytest.mark.slow
def test_backend_default_scale_applies_when_the_option_is_left_out(run_cli, clip_path, tmp_path, monkeypatch):
    """A backend may default to another scale (the shapes backend uses 0.5): without
    --motion-scale, generate must use it, say so in its JSON, and give the video of that
    scale given explicitly; an explicit --motion-scale still wins."""
    import vmc_tiny

    r = run_cli("tune", clip_path, "-p", "a disc", "--steps", "3", "--lr", "3e-2", "--name", "d")
    assert r.code == 0, r

    def keyframes(tag, *scale):
        out = tmp_path / tag
        r = run_cli("generate", "d", "-p", "a square", "-o", out, *COMMON, *scale, "--json")
        assert r.code == 0, r
        return r.json()["videos"][0]["motion_scale"], read_frames(out)

    s1, at_one = keyframes("one")
    assert s1 == 1.0
    _, at_zero = keyframes("zero", "--motion-scale", "0")
    assert not np.array_equal(at_one, at_zero)
    monkeypatch.setattr(vmc_tiny, "DEFAULTS", {"motion_scale": 0.0})  # as a plugin registers its own
    s, frames = keyframes("default")
    assert s == 0.0 and np.array_equal(frames, at_zero)
    s, frames = keyframes("explicit", "--motion-scale", "1")
    assert s == 1.0 and np.array_equal(frames, at_one)


@pytest.mark.slow
def test_invert_with_base_inverts_without_the_profile_and_samples_with_it(run_cli, clip_path, tmp_path):
    """``--invert-with base``: the inversion is the base model's (the one `vmc invert
    --motion-scale 0` makes and saves), the key-frames are sampled with the profile at the motion
    scale: the same pixels as doing the two halves by hand through MotionPipeline."""
    from vmc_cli.method.pipeline import MotionPipeline

    r = run_cli("tune", clip_path, "-p", "a disc", "--steps", "3", "--lr", "3e-2", "--name", "p")
    assert r.code == 0, r
    out, out_profile = tmp_path / "base", tmp_path / "profile"
    r = run_cli("generate", "p", "-p", "a square", "-o", out, *COMMON, "--invert-with", "base", "--json")
    assert r.code == 0, r
    assert r.json()["videos"][0]["invert_with"] == "base"
    saved = ProfileStore().manifest("p")["inversion"]
    assert saved["motion_scale"] == 0.0  # the base model's inversion, kept in the profile
    r = run_cli("generate", "p", "-p", "a square", "-o", out_profile, *COMMON, "--json")
    assert r.code == 0, r
    assert not np.array_equal(read_frames(out), read_frames(out_profile))

    base, _ = load_profile("p", store=ProfileStore(), runtime=Runtime("cpu"), backend_name=None,
                           stages=("keyframes",), motion_scale=0.0)
    pipeline = MotionPipeline(base)
    x_t = pipeline.invert(ProfileStore().load("p", "clip.safetensors")["clip"], 2)
    pipeline.apply_profile(ProfileStore().load("p", "weights.safetensors"), 1.0)
    keyframes = pipeline.keyframes(x_t, "a square", steps=2, guidance=base.defaults["guidance"],
                                   start_timestep=pipeline.start_timestep(2, 1.0, saved["signal"]))
    assert np.array_equal(base.model_to_frames(keyframes), read_frames(out))
    r = run_cli("generate", "p", "-p", "a square", "-o", tmp_path / "x", "--invert-with", "tuned")
    assert r.code == 1 and "unknown --invert-with 'tuned'" in r.stderr and not (tmp_path / "x").exists()
