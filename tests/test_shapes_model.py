"""The shapes model: saved in the diffusers layout and loaded back exactly (float16 storage);
the training script records its recipe, and a v-prediction target is what it learns."""


import forked
import pytest
import torch

from vmc_shapes import model as shapes_model


def test_save_and_load_round_trip(tmp_path):
    unet, text, tok = shapes_model.build(seed=3)
    folder = tmp_path / "weights"
    shapes_model.save_pretrained(folder, unet, text, {"note": "test"})
    unet2, text2, tok2 = shapes_model.load(folder)
    for a, b in ((unet, unet2), (text, text2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        for name in sa:
            assert torch.equal(sa[name].half().float(), sb[name]), name  # stored in float16
    assert shapes_model.training_record(folder) == {"note": "test"}
    assert unet2.config.sample_size == shapes_model.SIZE
    assert torch.equal(tok2(["a red circle is moving"]), tok(["a red circle is moving"]))
    assert not (tmp_path / "weights.tmp").exists()
    # saved again from the loaded copy (as training does with --init): no local path in the config
    shapes_model.save_pretrained(tmp_path / "again", unet2, text2, {"note": "test"})
    assert str(tmp_path) not in (tmp_path / "again" / "unet" / "config.json").read_text()


@pytest.mark.slow
def test_training_script_runs_and_records_its_recipe(tmp_path):
    out = tmp_path / "w"
    r = forked.run_python(["--steps", "2", "--batch", "2", "--clips", "4", "--device", "cpu", "--out", out],
                          module="vmc_shapes.train")  # its own process, without the interpreter's start-up
    assert r.returncode == 0, r.stderr
    record = shapes_model.training_record(out)
    assert record["steps_done"] == 2 and record["recipe"]["batch"] == 2 and record["finished"] is True
    assert record["final_loss_mean_last_200"] > 0
    assert shapes_model.load(out)[0].config.sample_size == shapes_model.SIZE


@pytest.mark.slow
def test_frame_position_gains_learn_at_their_own_rate(tmp_path):
    """Adam's first step moves a parameter by lr x g / (|g| + eps): about lr where the gradient is
    not tiny. One step from zero gains (no warm-up, no weight average), same seed, so with
    --gain-lr-scale 1000 every gain moves exactly 1000 times as far as with 1."""
    from safetensors.torch import load_file

    def gains_after_one_step(scale: float) -> torch.Tensor:
        out = tmp_path / f"w{scale:g}"
        r = forked.run_python(["--steps", "1", "--warmup", "1", "--batch", "2", "--clips", "4", "--device", "cpu",
                               "--lr", "1e-4", "--ema", "0", "--frame-positions", "8", "--gain-lr-scale", scale,
                               "--out", out], module="vmc_shapes.train")
        assert r.returncode == 0, r.stderr
        assert shapes_model.training_record(out)["recipe"]["gain_lr_scale"] == scale
        weights = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
        return torch.cat([v.float().abs().flatten() for k, v in weights.items() if k.endswith("frame_position_gain")])

    slow, fast = gains_after_one_step(1.0), gains_after_one_step(1000.0)
    assert slow.numel() > 0 and bool((slow > 0).all())
    assert abs(float(slow.median()) - 1e-4) < 2e-6  # most gradients are far above eps
    assert torch.allclose(fast / slow, torch.full_like(slow, 1000.0), rtol=3e-3)  # float16 storage


def test_the_backend_turns_what_training_teaches_back_into_the_noise(tmp_path):
    """Constructed case: x0 and eps, noised at a few timesteps of the model's schedule. Training
    teaches v = sqrt(abar) eps - sqrt(1 - abar) x0 there, and a network that outputs exactly that
    must come out of the backend's predict_noise as eps (to float tolerance)."""
    from diffusers import DDPMScheduler

    from vmc_shapes.backend import ShapesBackend
    from vmc_shapes.train import training_target

    gen = torch.Generator().manual_seed(1)
    x0 = torch.rand((4, 3, shapes_model.FRAMES, 8, 8), generator=gen) * 2 - 1
    eps = torch.randn(x0.shape, generator=gen)
    t = torch.tensor([0, 250, 700, 999])
    sched = DDPMScheduler.from_config(shapes_model.SCHEDULER)
    abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    v = abar.sqrt() * eps - (1 - abar).sqrt() * x0
    torch.testing.assert_close(training_target(sched, x0, eps, t), v)

    unet, text, _ = shapes_model.build(seed=0)
    shapes_model.save_pretrained(tmp_path / "w", unet, text, {})
    backend = ShapesBackend(tmp_path / "w")
    backend.load()

    class ExactV(torch.nn.Module):
        def forward(self, x, timesteps, text):
            return type("Out", (), {"sample": v})()

    backend._unet = ExactV()
    got = backend.predict_noise(x_t, t, backend.encode_prompts([""] * len(t)))
    torch.testing.assert_close(got, eps)
