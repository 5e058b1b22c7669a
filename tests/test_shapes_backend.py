"""The ``shapes`` backend: v -> epsilon conversion (analytic), loading through the plugin
registry from a weights folder, revision tracking, errors, and the whole CLI on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vmc_shapes import model as shapes_model
from vmc_shapes.backend import ShapesBackend, weights_revision


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """An untrained shapes model saved like the shipped one (plumbing tests need no training)."""
    folder = tmp_path_factory.mktemp("shapes") / "weights"
    unet, text, _ = shapes_model.build(seed=5)
    shapes_model.save_pretrained(folder, unet, text, {"note": "random"})
    return folder


@pytest.fixture
def backend(random_weights):
    b = ShapesBackend(random_weights)
    b.load()
    return b


def test_predict_noise_turns_the_models_v_into_the_true_noise(backend):
    # If the network predicted v exactly, predict_noise must return the exact noise.
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand((3, 3, 8, 32, 32), generator=gen) * 2 - 1
    eps = torch.randn(x0.shape, generator=gen)
    t = torch.tensor([5, 500, 999])
    # abar from the saved scheduler config, worked out here (squaredcos_cap_v2: betas from the
    # cosine alpha-bar f(s) = cos((s + 0.008) / 1.008 * pi / 2)^2, capped at 0.999), not from the backend
    config = json.loads((backend.folder / "scheduler" / "scheduler_config.json").read_text())
    assert (config["beta_schedule"], config["num_train_timesteps"]) == ("squaredcos_cap_v2", 1000)
    f = lambda s: np.cos((s / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    betas = np.minimum(1 - f(np.arange(1, 1001)) / f(np.arange(1000)), 0.999)
    abar = torch.tensor(np.cumprod(1 - betas)[t.numpy()], dtype=torch.float32).view(-1, 1, 1, 1, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    v = abar.sqrt() * eps - (1 - abar).sqrt() * x0

    class Exact(torch.nn.Module):
        def forward(self, x, timesteps, text):
            return type("Out", (), {"sample": v})()

    real = backend._unet
    backend._unet = Exact()
    try:
        got = backend.predict_noise(x_t, t, backend.encode_prompts([""] * 3))
    finally:
        backend._unet = real
    torch.testing.assert_close(got, eps, atol=2e-5, rtol=0)
    # ... the backend states what its model predicts, and the schedulers the core uses are told
    # that they get epsilon (the core converted it).
    assert backend.noise_scheduler_config()["prediction_type"] == "v_prediction"
    assert backend.sampling_scheduler().config.prediction_type == "epsilon"
    assert backend.inversion_scheduler().config.prediction_type == "epsilon"
    assert backend.sampling_scheduler().config.beta_schedule == shapes_model.SCHEDULER["beta_schedule"]


def test_scalar_timesteps_broadcast_over_the_batch(backend):
    x = torch.randn(2, 3, 8, 32, 32)
    text = backend.encode_prompts(["a red circle is moving", ""])
    a = backend.predict_noise(x, torch.tensor(300), text)
    b = backend.predict_noise(x, torch.tensor([300, 300]), text)
    torch.testing.assert_close(a, b)


def test_registered_and_loaded_from_the_folder_in_the_environment(random_weights, monkeypatch):
    from vmc_cli.models.plugins import get_backend

    monkeypatch.setenv("VMC_SHAPES_PATH", str(random_weights))
    b = get_backend("shapes")
    assert (b.width, b.height, b.num_frames) == (32, 32, 8)
    info = b.model_info()
    assert info["keyframes"] == {"id": "vmc-shapes/keyframes", "revision": weights_revision(random_weights)}
    assert set(info) == {"keyframes", "interpolation", "upscale"}


def test_revision_follows_the_weights(random_weights, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(random_weights, other)
    assert weights_revision(other) == weights_revision(random_weights)
    (other / "training.json").write_text("{}")  # the training record is not the model
    assert weights_revision(other) == weights_revision(random_weights)
    unet, text, _ = shapes_model.build(seed=6)
    shapes_model.save_pretrained(other, unet, text, {})
    assert weights_revision(other) != weights_revision(random_weights)


def test_missing_weights_folder_is_a_one_line_error(tmp_path):
    from vmc_cli.errors import VmcError

    with pytest.raises(VmcError, match="no shapes model in"):
        ShapesBackend(tmp_path / "nothing").load()


@pytest.mark.slow
def test_cli_tune_and_generate_on_the_shapes_backend(random_weights, run_cli, tmp_path, monkeypatch):
    from vmc_cli.io.video import read_frames, write_video
    from vmc_shapes.world import held_out_paths, render

    monkeypatch.setenv("VMC_SHAPES_PATH", str(random_weights))
    clip = write_video(render("triangle", "yellow", held_out_paths()["zigzag"]), tmp_path / "src.gif")
    r = run_cli("tune", clip, "--prompt", "a shape is moving", "--backend", "shapes", "--name", "zz",
                "--steps", "2", "--json")
    assert r.code == 0, r
    out = tmp_path / "new.mp4"
    r = run_cli("generate", "zz", "--prompt", "a red square is moving", "--steps", "3", "--invert-steps", "3",
                "-o", out, "--json")
    assert r.code == 0, r
    result = r.json()[0] if isinstance(r.json(), list) else r.json()
    frames = read_frames(out)
    assert frames.shape == (29, 48, 48, 3)
    manifest = (tmp_path / "vmc-home").rglob("manifest.toml")
    assert any("vmc-shapes/keyframes" in p.read_text() for p in manifest), result


def test_profile_from_other_weights_is_refused(random_weights, run_cli, tmp_path, monkeypatch):
    import shutil

    from vmc_cli.io.video import write_video
    from vmc_shapes.world import held_out_paths, render

    monkeypatch.setenv("VMC_SHAPES_PATH", str(random_weights))
    clip = write_video(render("circle", "red", held_out_paths()["bounce"]), tmp_path / "src.gif")
    assert run_cli("tune", clip, "--prompt", "a shape is moving", "--backend", "shapes", "--name", "b",
                   "--steps", "1").code == 0
    other = tmp_path / "retrained"
    shutil.copytree(random_weights, other)
    unet, text, _ = shapes_model.build(seed=9)
    shapes_model.save_pretrained(other, unet, text, {})
    monkeypatch.setenv("VMC_SHAPES_PATH", str(other))
    r = run_cli("generate", "b", "--prompt", "a red square is moving", "-o", tmp_path / "x.mp4")
    assert r.code == 1 and "revision" in r.stderr.lower(), r
    assert not (tmp_path / "x.mp4").exists()


SHIPPED = shapes_model.WEIGHTS


@pytest.mark.skipif(not (SHIPPED / "unet" / "config.json").exists(), reason="no shipped shapes weights")
def test_shipped_weights_are_small_and_record_their_training():
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size < 5 * 2**20
    record = shapes_model.training_record()
    for key in ("recipe", "seconds", "final_loss_mean_last_200", "steps_done", "parameters"):
        assert key in record, key
    unet, text, _ = shapes_model.load()
    assert sum(p.numel() for p in [*unet.parameters(), *text.parameters()]) == record["parameters"]


@pytest.mark.slow
@pytest.mark.skipif(not (SHIPPED / "unet" / "config.json").exists(), reason="no shipped shapes weights")
def test_shipped_model_draws_the_colour_it_is_asked_for():
    # From plain noise, a few captions with a short sampler (6 steps: all 8 right and moving when
    # checked, as at 10 and 20): the colour must be right in most clips, and the shape must move (docs/
    # holds the full accuracy figures over many seeds).
    from vmc_shapes.check import measure, sample
    from vmc_shapes.world import caption

    b = ShapesBackend()
    b.load()
    wanted = [("square", "blue"), ("circle", "red"), ("triangle", "green"), ("square", "yellow")] * 2
    noise = torch.randn((len(wanted), 3, 8, 32, 32), generator=torch.Generator().manual_seed(0))
    clips = sample(b, [caption(*w) for w in wanted], noise, steps=6, guidance=5.0)
    result = measure(clips, wanted)
    assert result["colour_accuracy"] >= 0.75, result
    assert result["moving"] >= 0.75, result


def test_tuning_sees_the_network_as_trained_without_dropout(backend):
    # The model was trained in eval mode; tuning runs in train mode and must not drop activations.
    x = torch.randn(1, 3, 8, 32, 32)
    text = backend.encode_prompts(["a shape is moving"])
    backend.unet.train()
    try:
        a = backend.unet(x, torch.tensor([500]), text).sample
        b = backend.unet(x, torch.tensor([500]), text).sample
    finally:
        backend.unet.eval()
    assert torch.equal(a, b)


def test_measure_counts_each_shape_that_was_asked_for():
    """The check's confusion table, on rendered clips whose shapes are known."""
    from vmc_shapes.check import measure
    from vmc_shapes.world import held_out_paths, render

    path = held_out_paths()["zigzag"]
    clips = np.stack([render("square", "red", path), render("square", "blue", path), render("circle", "red", path)])
    wanted = [("circle", "red"), ("square", "blue"), ("circle", "red")]
    result = measure(clips, wanted)
    assert result["shape_confusion"] == {"circle": {"square": 1, "circle": 1}, "square": {"square": 1}}
    assert result["shape_accuracy"] == pytest.approx(2 / 3) and result["colour_accuracy"] == 1.0


def test_inbetweens_move_a_shape_along_the_shift_between_key_frames():
    # Analytic case: a 6x6 square jumps by (+7, +10) px between two key-frames.  The
    # in-betweens must keep the ends exact and carry one square of the same area along
    # the straight line (a cross-fade would leave two half-bright squares at the ends).
    from vmc_tiny.backend import motion_inbetweens, phase_shift

    a = torch.full((1, 3, 32, 32), -1.0)
    b = a.clone()
    a[:, :, 4:10, 5:11] = 1
    b[:, :, 14:20, 12:18] = 1
    assert phase_shift(a, b).tolist() == [[7.0, 10.0]]
    frames = motion_inbetweens(a, b, 5)
    torch.testing.assert_close(frames[:, :, 0], a)
    torch.testing.assert_close(frames[:, :, -1], b)
    for k in range(5):
        bright = frames[0, 0, k] > 0
        ys, xs = torch.nonzero(bright, as_tuple=True)
        w = k / 4
        assert abs(xs.float().mean().item() - (7.5 + 7 * w)) <= 0.6
        assert abs(ys.float().mean().item() - (6.5 + 10 * w)) <= 0.6
        assert 25 <= int(bright.sum()) <= 40, (k, int(bright.sum()))


@pytest.mark.slow
def test_shapes_cascade_keeps_a_moving_shape_trackable(random_weights):
    # The full cascade (8 key-frames -> 29 frames, 1.5x) on a shape rendered along a held-out
    # path: the in-between frames must lie on the path between their key-frames, and the
    # video's motion must track like the key-frames' own (Lucas-Kanade loses every point of
    # a cross-fade, which gave the README demo a motion fidelity of 0).
    from vmc_cli.method.metrics import motion_fidelity
    from vmc_shapes.world import centroid_path, held_out_paths, render

    path = held_out_paths()["figure_eight"]
    keys = render("square", "red", path, size=32)
    b = ShapesBackend(random_weights)
    b.load(stages=("all",))
    x = torch.from_numpy(keys).float().permute(3, 0, 1, 2)[None] / 127.5 - 1
    video = np.asarray(b.run_cascade(x, "a red square is moving"))
    assert video.shape == (29, 48, 48, 3)
    got = centroid_path(video)
    assert not np.isnan(got).any()
    # frame 4k + j lies j/4 of the way from key-frame k to key-frame k + 1
    steps = (np.arange(4) / 4)[None, :, None]
    want = np.concatenate([(path[:-1, None] + (path[1:, None] - path[:-1, None]) * steps).reshape(-1, 2), path[-1:]])
    assert np.abs(got - want).max() < 0.06, np.abs(got - want).max()
    score = motion_fidelity(render("square", "red", path, size=128), video)
    assert score["tracks_output"] >= 10 and score["motion_fidelity"] > 0.8, score
