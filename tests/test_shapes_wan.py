"""The ``shapes-wan`` backend on its shipped weights: what a user types, the export into diffusers'
``WanPipeline``, and the flow inversion of a trained model.

References are independent of vmc's sampler: diffusers' own ``WanPipeline`` (its scheduler, its
guidance, its VAE decode) for the export, and the clip itself for the inversion.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vmc_cli.store.profiles import ProfileStore

CAPTION = "a red circle is moving"


@pytest.fixture(scope="module")
def zigzag_clip(tmp_path_factory):
    """A held-out path (the zig-zag), 9 frames of a red circle, as an mp4 at 4x the model's size."""
    from vmc_cli.io.video import write_video
    from vmc_shapes.world import held_out_paths, render

    frames = render("circle", "red", held_out_paths(9)["zigzag"], 128)
    return write_video(frames, tmp_path_factory.mktemp("sw") / "zigzag.mp4", fps=4), frames


def test_listed_with_its_frames_and_size(run_cli):
    r = run_cli("backends", "--json")
    assert r.code == 0, r
    (row,) = [b for b in r.json()["backends"] if b["name"] == "shapes-wan"]
    assert "9 frames at 32x32" in row["description"] and "no download" in row["description"]


def test_tune_and_generate_need_no_other_flag(run_cli, zigzag_clip, tmp_path):
    """`vmc tune clip.mp4 --prompt ... --backend shapes-wan` with the backend's own defaults
    (--steps only shortens it here), then generate with no flag at all."""
    clip, _ = zigzag_clip
    r = run_cli("tune", clip, "--prompt", CAPTION, "--backend", "shapes-wan", "--steps", "20", "--json")
    assert r.code == 0, r
    name = r.json()["profile"]
    manifest = ProfileStore().manifest(name)
    assert manifest["backend"]["models"]["keyframes"]["id"] == "vmc-shapes-wan/keyframes"
    assert manifest["source"]["frame_indexes"] == list(range(9)) and manifest["adapter"]["kind"] == "lora"
    r = run_cli("generate", name, "--prompt", "a blue square is moving", "-o", tmp_path / "out.mp4", "--json")
    assert r.code == 0, r
    video = r.json()["videos"][0]
    assert (video["frames"], video["width"], video["height"]) == (9, 32, 32) and video["init"] == "inverted"


def test_the_export_in_wan_pipeline_gives_the_same_keyframes(run_cli, zigzag_clip, tmp_path):
    """A shapes-wan profile exported with ``vmc export`` loads with ``WanPipeline.load_lora_weights``
    and, from the same noise, the pipeline's key-frames are those ``vmc generate --init noise`` writes
    (its sampler, guidance and decode; 8-bit frames). Measured: at most 1 grey level apart."""
    from diffusers import WanPipeline

    from vmc_cli.io.video import read_frames
    from vmc_shapes_wan.model import WEIGHTS

    clip, _ = zigzag_clip
    assert run_cli("tune", clip, "--prompt", CAPTION, "--backend", "shapes-wan", "--steps", "30", "--lr", "1e-3",
                   "--name", "z").code == 0
    lora = tmp_path / "z.safetensors"
    assert run_cli("export", "z", "-o", lora).code == 0
    steps, guidance, seed = 10, 5.0, 3
    r = run_cli("generate", "z", "-p", "a blue square is moving", "--init", "noise", "--seed", seed, "--steps", steps,
                "--guidance", guidance, "--stages", "keyframes", "-o", tmp_path / "ours", "--format", "png")
    assert r.code == 0, r
    ours = read_frames(tmp_path / "ours").astype(int)
    pipe = WanPipeline.from_pretrained(WEIGHTS)
    noise = torch.randn((1, 8, 9, 8, 8), generator=torch.Generator("cpu").manual_seed(seed))
    untuned = pipe("a blue square is moving", negative_prompt="", height=32, width=32, num_frames=9,
                   num_inference_steps=steps, guidance_scale=guidance, latents=noise.clone(), output_type="np",
                   max_sequence_length=pipe.tokenizer.model_max_length).frames[0]
    pipe.load_lora_weights(str(lora))
    theirs = pipe("a blue square is moving", negative_prompt="", height=32, width=32, num_frames=9,
                  num_inference_steps=steps, guidance_scale=guidance, latents=noise.clone(), output_type="np",
                  max_sequence_length=pipe.tokenizer.model_max_length).frames[0]
    theirs = np.round(np.asarray(theirs) * 255).astype(int)
    untuned = np.round(np.asarray(untuned) * 255).astype(int)
    assert theirs.shape == ours.shape == (9, 32, 32, 3)
    assert np.abs(theirs - ours).max() <= 1
    assert np.abs(untuned - ours).max() > 20  # the profile is in the pipeline's frames, not just the base model


def test_flow_inversion_gives_the_clip_back(zigzag_clip):
    """Invert-then-sample on the trained model as vmc inverts (empty prompt, no guidance): at the
    default 25 steps the clip comes back coarsely (measured 0.69 of its norm, path error 0.20 of the
    frame, against about 1.2 and 0.27 from fresh noise), and the error falls with the steps (100:
    0.24 and 0.07). Tolerances: docs/shapes_wan.md section 3."""
    from vmc_cli.io.clips import read_clip
    from vmc_cli.method.pipeline import MotionPipeline
    from vmc_cli.models.plugins import get_backend
    from vmc_shapes.world import centroid_path

    backend = get_backend("shapes-wan")
    backend.load(device="cpu")
    small = np.asarray(read_clip(zigzag_clip[0], (32, 32)).frames)
    x0 = backend.frames_to_model(small)
    pipeline = MotionPipeline(backend)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    fresh = float((pipeline.keyframes(noise, "", steps=25, guidance=1.0) - x0).norm() / x0.norm())
    errors = {}
    for steps in (backend.defaults["invert_steps"], 100):
        back = pipeline.transfer(x0, "", steps=steps, guidance=1.0)
        got = backend.model_to_frames(back)
        path = float(np.nanmean(np.linalg.norm(centroid_path(got) - centroid_path(small), axis=1)))
        errors[steps] = (float((back - x0).norm() / x0.norm()), path)
    assert errors[25][0] < 0.8 < fresh and errors[25][1] < 0.25, (errors, fresh)
    assert errors[100][0] < 0.35 and errors[100][1] < 0.1, errors
