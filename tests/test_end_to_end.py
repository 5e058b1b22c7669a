"""The whole flow through the CLI on the tiny backend: tune, invert, generate, eval."""

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from vmc_cli.io.video import read_frames

pytestmark = pytest.mark.slow  # whole CLI runs, 10 s to 1.5 min each on two cores


def test_tune_generate_eval(run_cli, clip_path, tmp_path, vmc_home, tiny_clip_dir):
    r = run_cli("tune", clip_path, "--prompt", "a red disc is flying over the sea at sunset", "--steps", "2", "--json")
    assert r.code == 0, r
    tuned = r.json()
    assert tuned["profile"] == "red-disc-is-flying"
    assert tuned["tuning_prompt"] == "a red disc is flying"
    assert tuned["frames"] == list(range(8)) and tuned["parameters"] > 0
    profile_dir = vmc_home / "profiles" / "red-disc-is-flying"
    assert {p.name for p in profile_dir.iterdir()} == {"manifest.toml", "weights.safetensors", "clip.safetensors"}

    shown = run_cli("profiles", "show", "red-disc-is-flying", "--json").json()
    assert shown["prompt"] == {"original": "a red disc is flying over the sea at sunset",
                               "tuning": "a red disc is flying", "appearance_invariant": True}
    assert shown["backend"]["name"] == "tiny" and shown["tuning"]["steps"] == 2
    assert shown["source"]["frame_indexes"] == list(range(8))

    out = tmp_path / "blue.mp4"
    r = run_cli("generate", "red-disc-is-flying", "--prompt", "a blue disc is flying", "--steps", "3",
                "--invert-steps", "3", "-o", out, "--json")
    assert r.code == 0, r
    video = r.json()["videos"][0]
    assert video["path"] == str(out) and (video["frames"], video["width"], video["height"]) == (29, 96, 60)
    frames = read_frames(out)
    assert frames.shape == (29, 60, 96, 3)
    assert (profile_dir / "inversion.safetensors").is_file()  # generate inverted and kept it
    listed = run_cli("profiles", "list", "--json").json()["profiles"]
    assert [p["name"] for p in listed] == ["red-disc-is-flying"] and listed[0]["inverted"] is True

    r = run_cli("eval", out, "--prompt", "a blue disc is flying", "--keyframes", "8", "--clip-model", tiny_clip_dir,
                "--json")
    assert r.code == 0, r
    scores = r.json()
    assert scores["frame_indexes"] == [0, 4, 8, 12, 16, 20, 24, 28]
    assert scores["frames"] == 8
    # the same numbers as scoring those 8 frames of the same video with the same CLIP directly
    from vmc_cli.method.metrics import clip_scores

    direct = clip_scores(frames[scores["frame_indexes"]], "a blue disc is flying", str(tiny_clip_dir))
    assert direct["frames"] == 8
    for key in ("text_alignment", "temporal_consistency"):
        assert scores[key] == pytest.approx(direct[key], abs=1e-6), key


def test_keyframes_batch_and_formats(run_cli, clip_path, tmp_path):
    assert run_cli("tune", clip_path, "-p", "a disc is moving", "--steps", "1", "--name", "disc").code == 0
    r = run_cli("invert", "disc", "--steps", "3", "--json")
    assert r.code == 0 and r.json()["steps"] == 3
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a green disc is moving\n\n# a comment\na white square is moving\n")
    out = tmp_path / "batch"
    r = run_cli("generate", "disc", "--prompt-file", prompts, "-o", out, "--format", "gif", "--stages", "keyframes",
                "--steps", "2", "--invert-steps", "3", "--json")
    assert r.code == 0, r
    videos = r.json()["videos"]
    assert [v["prompt"] for v in videos] == ["a green disc is moving", "a white square is moving"]
    for v in videos:
        path = Path(v["path"])
        assert path.parent == out and path.suffix == ".gif"
        assert read_frames(path).shape == (8, 40, 64, 3)
    r = run_cli("generate", "disc", "-p", "a green disc is moving", "-o", tmp_path / "frames", "--format", "png",
                "--stages", "keyframes", "--steps", "2", "--invert-steps", "3")
    assert r.code == 0, r
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == 8 and read_frames(tmp_path / "frames").shape == (8, 40, 64, 3)


def test_keyframes_start_from_the_saved_inversion(run_cli, clip_path, tmp_path, monkeypatch, vmc_home):
    """The first generate inverts the clip and saves it; later ones invert nothing and sample
    from the stored noise (DDIM, eta 0: the seed changes nothing); --init noise uses the seed."""
    import torch
    from safetensors.torch import load_file

    import vmc_cli.method.inversion as inversion

    assert run_cli("tune", clip_path, "-p", "a disc", "--steps", "1", "--name", "rt").code == 0
    common = ("--steps", "2", "--invert-steps", "3", "--stages", "keyframes", "--format", "png")
    inversions = []
    real = inversion.ddim_invert
    monkeypatch.setattr(inversion, "ddim_invert", lambda *a, **k: inversions.append(1) or real(*a, **k))

    def keyframes(name, *extra):
        r = run_cli("generate", "rt", "-p", "a square", "-o", tmp_path / name, *common, *extra)
        assert r.code == 0, r
        return read_frames(tmp_path / name)

    a = keyframes("a", "--seed", "0")
    assert len(inversions) == 1
    b = keyframes("b", "--seed", "1")
    assert len(inversions) == 1 and np.array_equal(a, b)  # the saved inversion, not a new one
    # the same as sampling the stored noise directly with the profile's weights
    from vmc_cli.jobs import Runtime, load_profile
    from vmc_cli.store.profiles import ProfileStore
    from vmc_cli.method.sampling import ddim_sample, guided

    backend, _ = load_profile("rt", store=ProfileStore(vmc_home), runtime=Runtime("cpu"), backend_name=None,
                              stages=("keyframes",))
    noise = load_file(vmc_home / "profiles" / "rt" / "inversion.safetensors")["noise"]
    text, uncond = backend.encode_prompts(["a square", ""]).chunk(2)
    with torch.no_grad():
        direct = ddim_sample(guided(backend.predict_noise, text, uncond, backend.defaults["guidance"]),
                             backend.sampling_scheduler(), noise, 2)
    assert np.array_equal(backend.model_to_frames(direct), a)
    c, d = keyframes("c", "--init", "noise", "--seed", "0"), keyframes("d", "--init", "noise", "--seed", "1")
    assert not np.array_equal(c, d) and not np.array_equal(a, c)
    r = run_cli("generate", "rt", "-p", " ", *common)
    assert r.code == 1 and "empty" in r.stderr


@pytest.mark.skipif(not (SHARED / "clips" / "sharks_swimming.mp4").exists(), reason="../shared/clips not present")
def test_real_clip(run_cli, tmp_path):
    clip = SHARED / "clips" / "sharks_swimming.mp4"
    r = run_cli("tune", clip, "--prompt", "two sharks are moving", "--steps", "2", "--json")
    assert r.code == 0, r
    assert r.json()["profile"] == "two-sharks-are-moving"
    out = tmp_path / "spaceships.mp4"  # key-frames: the cascade after them is test_tune_generate_eval's
    r = run_cli("generate", "two-sharks-are-moving", "-p", "two spaceships are moving in space", "--steps", "2",
                "--invert-steps", "2", "--stages", "keyframes", "-o", out, "--json")
    assert r.code == 0, r
    frames = read_frames(out)
    assert frames.shape == (8, 40, 64, 3) and frames.std() > 0


def test_strength_is_recorded_and_reused_only_when_it_matches(run_cli, clip_path, vmc_home, tmp_path):
    assert run_cli("tune", clip_path, "-p", "a disc", "--steps", "1", "--name", "s").code == 0
    r = run_cli("invert", "s", "--steps", "4", "--strength", "0.5", "--json")
    assert r.code == 0, r
    half = r.json()
    full = run_cli("invert", "s", "--steps", "4", "--json").json()
    # leading spacing over 1000 steps: 0, 250, 500, 750; half of them ends at 250
    assert (half["strength"], half["final_timestep"], full["final_timestep"]) == (0.5, 250, 750)
    assert half["signal"] > 0.5 > full["signal"]
    manifest = run_cli("profiles", "show", "s", "--json").json()
    assert manifest["inversion"]["strength"] == 1.0 and manifest["inversion"]["final_timestep"] == 750
    r = run_cli("generate", "s", "-p", "a square", "--invert-steps", "4", "--strength", "0.5", "--steps", "4",
                "--stages", "keyframes", "-o", tmp_path / "k.gif", "--json")
    assert r.code == 0 and r.json()["videos"][0]["strength"] == 0.5
    assert run_cli("profiles", "show", "s", "--json").json()["inversion"]["strength"] == 0.5  # re-inverted
    r = run_cli("generate", "s", "-p", "a square", "--strength", "1.5", "--json")
    assert r.code == 1 and "strength" in r.stderr


def test_keyframes_out_comes_from_the_same_run(run_cli, clip_path, tmp_path, monkeypatch):
    """--keyframes-out writes the key-frames that the video was made from, without sampling
    twice: they equal a --stages keyframes run, and the sampler runs once per prompt."""
    import vmc_cli.method.sampling as sampling

    assert run_cli("tune", clip_path, "-p", "a disc is moving", "--steps", "1", "--name", "disc").code == 0
    alone = tmp_path / "alone.png"
    common = ["--steps", "2", "--invert-steps", "3"]
    assert run_cli("generate", "disc", "-p", "a green disc", "--stages", "keyframes", "-o", alone, "-f", "png",
                   *common).code == 0
    calls = []
    real = sampling.ddim_sample
    monkeypatch.setattr(sampling, "ddim_sample",
                        lambda *a, **k: calls.append(k.get("label", "")) or real(*a, **k))

    key = tmp_path / "key.png"  # a folder of PNGs: lossless
    r = run_cli("generate", "disc", "-p", "a green disc", "-o", tmp_path / "video.mp4", "--keyframes-out", key,
                "-f", "mp4", *common, "--json")
    assert r.code == 0, r
    video = r.json()["videos"][0]
    assert video["keyframes"] == str(key) and video["frames"] == 29
    assert [c for c in calls if c.startswith("key-frames")] == ["key-frames 1/1"]  # sampled once
    assert np.array_equal(read_frames(key), read_frames(alone))  # png folder: lossless
    # a prompt file: one key-frames file per video, in the given folder (the cascade, checked
    # above, left out: it takes most of the time and names nothing)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a green disc\na white disc\n")
    r = run_cli("generate", "disc", "--prompt-file", prompts, "-o", tmp_path / "many", "--keyframes-out",
                tmp_path / "many_key", *common, "--stages", "keyframes", "--json")
    assert r.code == 0, r
    paths = [Path(v["keyframes"]) for v in r.json()["videos"]]
    assert [p.name for p in paths] == ["000_green-disc_keyframes.gif", "001_white-disc_keyframes.gif"]
    assert all(read_frames(p).shape[0] == 8 for p in paths)
