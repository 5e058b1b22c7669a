"""What the user types reaches the code that acts on it, and a profile's weights are really
used: options are captured where they take effect, on the tiny backend with step counts of 1-3."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vmc_cli.io.video import read_frames


@pytest.fixture
def profile(run_cli, clip_path):
    r = run_cli("tune", clip_path, "-p", "a red disc is flying over the sea", "--steps", "2", "--lr", "1e-2",
                "--name", "p", "--seed", "4")
    assert r.code == 0, r
    return "p"


def test_tune_options_reach_the_loop(run_cli, clip_path, monkeypatch):
    import vmc_cli.jobs as jobs

    seen = {}
    real = jobs.tune

    def spy(backend, video, text, config, progress, **kw):
        seen.update(config=config, text=text, tuning=backend.encode_prompts(["a red disc is flying over the sea"]))
        return real(backend, video, text, config, progress, **kw)

    monkeypatch.setattr(jobs, "tune", spy)
    r = run_cli("tune", clip_path, "-p", "a red disc is flying over the sea", "--steps", "1", "--loss", "l2",
                "--target", "temporal", "--lr", "3e-3", "--seed", "7", "--keep-prompt", "--timesteps", "5:50")
    assert r.code == 0, r
    c = seen["config"]
    assert (c.loss, c.target, c.lr, c.seed, c.steps, c.timestep_range) == ("l2", "temporal", 3e-3, 7, 1, (5, 50))
    assert torch.equal(seen["text"], seen["tuning"])  # --keep-prompt: the prompt as given, not its short form


def test_manifest_of_a_real_tune(run_cli, profile, clip_path):
    from vmc_cli import __version__

    m = run_cli("profiles", "show", profile, "--json").json()
    assert m["vmc_version"] == __version__ and m["schema"] >= 1
    assert m["source"]["path"] == str(clip_path.resolve())
    assert m["source"]["sha256"] == hashlib.sha256(clip_path.read_bytes()).hexdigest()
    assert m["tuning"]["seed"] == 4 and m["tuning"]["steps"] == 2 and m["tuning"]["lr"] == 1e-2
    assert set(m["loss"]) >= {"first", "last", "min", "mean_last_10"}
    assert m["prompt"] == {"original": "a red disc is flying over the sea", "tuning": "a red disc is flying",
                           "appearance_invariant": True}


@pytest.mark.slow
def test_human_stdout_is_only_the_result_line(run_cli, clip_path, tmp_path):
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--steps", "1", "--name", "h")
    assert r.code == 0 and r.stdout.splitlines() == [f"profile h saved in {r.stdout.split(' saved in ')[1].strip()}"]
    out = tmp_path / "h.gif"
    r = run_cli("generate", "h", "-p", "a green disc", "--steps", "1", "--invert-steps", "2", "--stages",
                "keyframes", "-o", out)
    assert r.code == 0 and r.stdout.splitlines() == [f"{out}  (8 frames, 64x40): a green disc"]


def test_generate_options_reach_the_sampler_and_the_writer(run_cli, profile, tmp_path, monkeypatch):
    import vmc_cli.method.sampling as sampling
    import vmc_cli.io.video as video

    seen = {"guided": [], "fps": []}
    real_guided, real_write = sampling.guided, video.write_video
    monkeypatch.setattr(sampling, "guided", lambda p, c, u, g: seen["guided"].append((c, u, g)) or real_guided(p, c, u, g))
    monkeypatch.setattr(video, "write_video", lambda f, o, fmt, fps: seen["fps"].append(fps) or real_write(f, o, fmt, fps))
    r = run_cli("generate", profile, "-p", "a green disc", "--guidance", "3.5", "--negative-prompt", "blurry",
                "--fps", "5", "--steps", "1", "--invert-steps", "2", "--stages", "keyframes", "-o", tmp_path / "g.gif")
    assert r.code == 0, r
    from vmc_cli.jobs import Runtime, load_profile
    from vmc_cli.store.profiles import ProfileStore

    backend, _ = load_profile(profile, store=ProfileStore(), runtime=Runtime("cpu"), backend_name=None,
                              stages=("keyframes",))
    cond, uncond, scale = seen["guided"][-1]
    assert scale == 3.5 and seen["fps"] == [5.0]
    assert torch.equal(cond, backend.encode_prompts(["a green disc"])) and torch.equal(
        uncond, backend.encode_prompts(["blurry"]))


def test_inversion_uses_the_empty_prompt_without_guidance(run_cli, profile, monkeypatch):
    from vmc_tiny.backend import TinyBackend

    calls = []
    real = TinyBackend.predict_noise
    monkeypatch.setattr(TinyBackend, "predict_noise",
                        lambda self, x, t, text: calls.append((self, x.shape[0], text)) or real(self, x, t, text))
    assert run_cli("invert", profile, "--steps", "3").code == 0
    assert len(calls) == 3
    backend = calls[0][0]
    empty = backend.encode_prompts([""])
    assert all(b == 1 and torch.equal(text, empty) for _, b, text in calls)  # one pass a step: no guidance


@pytest.mark.slow
def test_generate_and_invert_use_the_profiles_weights(run_cli, profile, tmp_path, vmc_home):
    """The tuned weights change the key-frames, and a weights file naming another model's
    parameters is refused with one line."""
    from safetensors.torch import load_file

    from vmc_cli.store.profiles import ProfileStore

    args = ("-p", "a green disc", "--steps", "2", "--invert-steps", "2", "--stages", "keyframes", "-f", "png")
    assert run_cli("generate", profile, *args, "-o", tmp_path / "tuned").code == 0
    weights_path = vmc_home / "profiles" / profile / "weights.safetensors"
    weights = load_file(weights_path)
    from vmc_cli.models.plugins import get_backend

    b = get_backend("tiny")
    b.load()
    params = dict(b.unet.named_parameters())
    base = {n: params[n].detach().clone() for n in weights}
    assert any(not torch.equal(base[n], w) for n, w in weights.items())  # tuning moved them
    # The same profile with the untuned values written in: other key-frames (after a new inversion).
    store = ProfileStore(vmc_home)
    store.add_file(profile, "weights.safetensors", base, "test_note", {"weights": "untuned"})
    assert run_cli("invert", profile, "--steps", "2").code == 0
    assert run_cli("generate", profile, *args, "-o", tmp_path / "base").code == 0
    assert not np.array_equal(read_frames(tmp_path / "tuned"), read_frames(tmp_path / "base"))
    # A weights file naming a parameter the model does not have, or of another shape: one-line errors.
    name = next(iter(base))
    for bad, message in [({"no.such.param": base[name]}, "which the model does not have"),
                         ({name: base[name].reshape(-1)[:3]}, "has shape")]:
        store.add_file(profile, "weights.safetensors", bad, "test_note", {"weights": "bad"})
        r = run_cli("generate", profile, *args, "-o", tmp_path / "bad")
        assert r.code == 1 and message in r.stderr and r.stderr.strip().splitlines()[0].startswith("Error:"), r
