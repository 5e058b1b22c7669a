"""DDIM inversion round trips with denoisers whose answers are known exactly."""

import math

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler

from vmc_cli.method.inversion import ddim_invert, kept_signal
from vmc_cli.method.sampling import ddim_sample, guided

CONFIG = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "epsilon",
          "clip_sample": False, "set_alpha_to_one": True, "steps_offset": 0}
ABAR = DDPMScheduler.from_config(CONFIG).alphas_cumprod.double()


def _abar(t, like):
    return ABAR[t.long().cpu()].view(-1, 1, 1, 1, 1).to(like.dtype)


def point_mass(mean_for_text):
    """The exact noise predictor for data that is a single point m(text):
    eps = (x - sqrt(abar) m) / sqrt(1 - abar)."""
    def predict(x, t, text):
        a = _abar(t, x)
        m = torch.stack([mean_for_text[int(k)] for k in text.view(-1)]).to(x.dtype)
        return (x - a.sqrt() * m) / (1 - a).sqrt()
    return predict


def gaussian(std):
    """The exact noise predictor for data ~ N(0, std^2 I): eps = sqrt(1-a) x / (a std^2 + 1 - a)."""
    def predict(x, t):
        a = _abar(t, x)
        return (1 - a).sqrt() * x / (a * std**2 + 1 - a)
    return predict


def test_round_trip_exact_for_point_mass():
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(1, 3, 8, 5, 6, generator=g, dtype=torch.float64) * 2 - 1
    other = torch.rand(1, 3, 8, 5, 6, generator=g, dtype=torch.float64) * 2 - 1
    predict = point_mass({0: clip[0], 1: other[0]})
    cond_a, cond_b = torch.zeros(1, 1), torch.ones(1, 1)
    noise = ddim_invert(lambda x, t: predict(x, t, cond_a), DDIMInverseScheduler.from_config(CONFIG), clip, 75)
    assert (noise - clip).abs().max() > 0.5  # it really moved away from the clip
    back = ddim_sample(lambda x, t: predict(x, t, cond_a), DDIMScheduler.from_config(CONFIG), noise, 75)
    assert torch.allclose(back, clip, atol=1e-6)
    # Same noise, other conditioning: the sampler follows the conditioning.
    moved = ddim_sample(lambda x, t: predict(x, t, cond_b), DDIMScheduler.from_config(CONFIG), noise, 75)
    assert torch.allclose(moved, other, atol=1e-6)


def test_round_trip_gaussian_data_converges_with_steps():
    g = torch.Generator().manual_seed(1)
    clip = 0.5 * torch.randn(1, 3, 8, 4, 4, generator=g, dtype=torch.float64)
    predict = gaussian(0.5)
    errors = {}
    for steps in (10, 75, 200):
        noise = ddim_invert(predict, DDIMInverseScheduler.from_config(CONFIG), clip, steps)
        back = ddim_sample(predict, DDIMScheduler.from_config(CONFIG), noise, steps)
        errors[steps] = (back - clip).abs().max().item()
        # Probability-flow ODE of N(0, s^2) maps data to unit-variance noise.
        assert 0.8 < noise.std().item() < 1.2
    assert errors[75] < 0.06 and errors[200] < errors[75] < errors[10]


def test_mismatched_inversion_schedule_does_not_reconstruct():
    """The check is sharp: inverting with another noise schedule (as the authors' code did) breaks the round trip."""
    g = torch.Generator().manual_seed(2)
    clip = 0.5 * torch.randn(1, 3, 8, 4, 4, generator=g, dtype=torch.float64)
    predict = gaussian(0.5)
    other = {**CONFIG, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}
    errors = []
    for inverse in (CONFIG, other):
        noise = ddim_invert(predict, DDIMInverseScheduler.from_config(inverse), clip, 75)
        back = ddim_sample(predict, DDIMScheduler.from_config(CONFIG), noise, 75)
        errors.append((back - clip).abs().max().item())
    assert errors[1] > 3 * errors[0]


def test_guidance_batches_cond_and_uncond_in_one_call():
    calls = []

    def predict_batched(x, t, text):
        calls.append(x.shape[0])
        return text.view(-1, 1, 1, 1, 1).expand(x.shape[0], 1, 2, 1, 1).clone()

    x = torch.zeros(1, 1, 2, 1, 1)
    t = torch.tensor([10])
    eps = guided(predict_batched, torch.full((1, 1), 3.0), torch.full((1, 1), 1.0), 9.0)(x, t)
    assert calls == [2]  # one batched pass
    assert torch.allclose(eps, torch.full_like(eps, 1.0 + 9.0 * (3.0 - 1.0)))
    calls.clear()
    eps = guided(predict_batched, torch.full((1, 1), 3.0), torch.full((1, 1), 1.0), 1.0)(x, t)
    assert calls == [1] and torch.allclose(eps, torch.full_like(eps, 3.0))


def test_partial_inversion_stops_at_the_right_level_and_still_round_trips():
    """For data ~ N(0, s^2) the probability-flow ODE only rescales: at level t the clip has become
    clip * sqrt(abar_t s^2 + 1 - abar_t) / s. A partial inversion must land exactly there."""
    g = torch.Generator().manual_seed(3)
    s = 0.5
    clip = s * torch.randn(1, 3, 8, 4, 4, generator=g, dtype=torch.float64)
    predict = gaussian(s)
    for strength in (1.0, 0.5, 0.2):
        inverse = DDIMInverseScheduler.from_config(CONFIG)
        noise = ddim_invert(predict, inverse, clip, 75, strength=strength)
        final = kept_signal(inverse, 75, strength)["final_timestep"]
        a = ABAR[final].item()
        ratio = (noise.norm() / clip.norm()).item()
        assert ratio == pytest.approx(math.sqrt(a * s * s + 1 - a) / s, rel=0.012)
        back = ddim_sample(predict, DDIMScheduler.from_config(CONFIG), noise, 75,
                           start_timestep=None if strength == 1 else final)
        assert (back - clip).abs().max().item() < 0.06


def test_kept_signal_matches_the_cosine_schedule_formula():
    def f(t):  # Nichol & Dhariwal's cosine schedule: abar(t) = f(t) / f(0)
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2

    info = kept_signal(DDIMInverseScheduler.from_config(CONFIG), 10, 0.5)
    # 10 steps over 1000 (leading spacing): 0, 100, ..., the first half ends at 400;
    # diffusers' alphas_cumprod[t] is abar at t + 1.
    assert info["final_timestep"] == 400
    assert info["signal"] == pytest.approx(math.sqrt(f(401) / f(0)), abs=1e-5)
    with pytest.raises(ValueError):
        kept_signal(DDIMInverseScheduler.from_config(CONFIG), 10, 0.0)


def test_matching_timestep_bridges_different_schedules():
    """With the authors' schedule the inversion's last timestep means another noise level on the
    sampler's schedule: the start is chosen by level, not by number."""
    from vmc_cli.method.sampling import matching_timestep

    authors = {**CONFIG, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
               "steps_offset": 1}
    info = kept_signal(DDIMInverseScheduler.from_config(authors), 75, 0.5)
    sampler = DDIMScheduler.from_config(CONFIG)
    start = matching_timestep(sampler, 75, info["signal"])
    grid = sorted(int(t) for t in sampler.timesteps)
    assert ABAR[start] <= info["signal"] ** 2  # at least as noisy as the inverted tensor
    below = [t for t in grid if t < start]
    assert not below or ABAR[max(below)] > info["signal"] ** 2  # and the least noisy such step
    assert start != info["final_timestep"]  # the naive choice (same number) would be wrong here
    # same schedule and grid: the level is the inversion's own last timestep
    same = kept_signal(DDIMInverseScheduler.from_config(CONFIG), 75, 0.5)
    assert matching_timestep(DDIMScheduler.from_config(CONFIG), 75, same["signal"]) == same["final_timestep"]
    assert matching_timestep(DDIMScheduler.from_config(CONFIG), 75, 0.0) == max(grid)
