"""The core's noise algebra (vmc_cli.method.schedule) against hand-written equations: diffusion
(v-prediction) and flow matching (rectified flow), flow inversion/sampling with exactly known
velocities, and the strength -> first-timestep rule against diffusers' img2img pipelines."""

import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler

from vmc_cli.backend import Backend
from vmc_cli.method.inversion import invert, kept_signal
from vmc_cli.method.sampling import matching_timestep, sample, start_noised
from vmc_cli.method.schedule import Schedule, is_flow_scheduler, strength_start

DIFFUSION = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
             "clip_sample": False, "set_alpha_to_one": True, "steps_offset": 0}
FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0}


def _clip(seed, shape=(2, 3, 4, 6, 5)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).float(), torch.randn(shape, generator=g).float()


def _col(values):
    return values.view(-1, 1, 1, 1, 1)


def test_v_prediction_gives_back_eps_and_x0():
    x0, eps = _clip(0)
    t = torch.tensor([37, 811])
    abar = _col(DDPMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod[t].double())
    x_t = (abar.sqrt() * x0.double() + (1 - abar).sqrt() * eps.double()).float()
    v = (abar.sqrt() * eps.double() - (1 - abar).sqrt() * x0.double()).float()
    schedule = Schedule({**DIFFUSION, "prediction_type": "v_prediction"})
    assert not schedule.flow and schedule.prediction_type == "v_prediction"
    torch.testing.assert_close(schedule.epsilon(v, x_t, t), eps, atol=2e-5, rtol=0)
    torch.testing.assert_close(schedule.x0(v, x_t, t), x0, atol=2e-5, rtol=0)
    # the forward process is x_t as written above
    torch.testing.assert_close(schedule.add_noise(x0, eps, t), x_t, atol=2e-6, rtol=0)
    # a backend that states v over a config saying epsilon (the shapes model's files) is believed
    stated = Schedule({**DIFFUSION, "prediction_type": "epsilon"}, prediction_type="v_prediction")
    torch.testing.assert_close(stated.epsilon(v, x_t, t), eps, atol=2e-5, rtol=0)


def test_epsilon_and_sample_predictions():
    x0, eps = _clip(1)
    t = torch.tensor(500)
    abar = DDPMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod[500].double()
    x_t = (abar.sqrt() * x0.double() + (1 - abar).sqrt() * eps.double()).float()
    schedule = Schedule(DIFFUSION)  # no prediction type in the config: epsilon
    assert schedule.epsilon(eps, x_t, t) is eps
    torch.testing.assert_close(schedule.x0(eps, x_t, t), x0, atol=2e-5, rtol=0)
    as_sample = Schedule({**DIFFUSION, "prediction_type": "sample"})
    torch.testing.assert_close(as_sample.epsilon(x0, x_t, t), eps, atol=2e-5, rtol=0)


def test_flow_velocity_gives_back_eps_and_x0():
    x0, eps = _clip(2)
    t = torch.tensor([250.0, 900.0])
    sigma = _col(t / 1000)
    x_t = (1 - sigma) * x0 + sigma * eps
    v = eps - x0
    schedule = Schedule(FLOW)
    assert schedule.flow and schedule.prediction_type == "flow"
    torch.testing.assert_close(schedule.epsilon(v, x_t, t), eps, atol=1e-5, rtol=0)
    torch.testing.assert_close(schedule.x0(v, x_t, t), x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(schedule.add_noise(x0, eps, t), x_t, atol=1e-6, rtol=0)
    alpha, s = schedule.coefficients(t)
    torch.testing.assert_close(alpha, 1 - t / 1000)
    torch.testing.assert_close(s, t / 1000)
    # samplers step on the velocity itself, and are flow-matching Euler
    assert schedule.sampler_output(v, x_t, t) is v
    assert is_flow_scheduler(schedule.sampler()) and is_flow_scheduler(schedule.inverter())
    assert not is_flow_scheduler(Schedule(DIFFUSION).sampler())


def test_mismatched_prediction_type_is_refused():
    with pytest.raises(ValueError):
        Schedule(FLOW, prediction_type="epsilon")
    with pytest.raises(ValueError):
        Schedule(DIFFUSION, prediction_type="flow")
    with pytest.raises(ValueError):
        Schedule({**DIFFUSION, "prediction_type": "noise"})


def test_diffusion_sampler_steps_on_epsilon():
    """A v-prediction schedule's samplers are configured for epsilon: the core converts once."""
    schedule = Schedule({**DIFFUSION, "prediction_type": "v_prediction"})
    assert schedule.sampler().config.prediction_type == "epsilon"
    assert schedule.inverter().config.prediction_type == "epsilon"


def point_mass_velocity(c):
    """The exact rectified-flow velocity when the data is the single clip ``c``: x_s = c + s (eps - c),
    so v = (x - c) / s for s > 0; at s = 0 every path starts at c and E[v] = E[eps] - c = -c."""
    def predict(x, t):
        s = _col(t.float() / 1000)
        return torch.where(s > 0, (x - c) / s.clamp_min(1e-12), -c.expand_as(x))
    return predict


def gaussian_velocity(tau):
    """The exact velocity E[eps - x0 | x_s] for data ~ N(0, tau^2 I):
    Cov(v, x_s) / Var(x_s) x = (s - (1 - s) tau^2) / ((1 - s)^2 tau^2 + s^2) x."""
    def predict(x, t):
        s = _col(t.double() / 1000)
        return ((s - (1 - s) * tau**2) / ((1 - s) ** 2 * tau**2 + s**2) * x.double()).to(x.dtype)
    return predict


def test_flow_sampling_lands_on_a_point_mass():
    c, noise = _clip(3)
    out = sample(point_mass_velocity(c), FlowMatchEulerDiscreteScheduler(), noise, 5)
    torch.testing.assert_close(out, c, atol=1e-5, rtol=0)


def _round_trip_error(predict, clip, steps, strength):
    z = invert(predict, FlowMatchEulerDiscreteScheduler(), clip, steps, strength=strength)
    kept = kept_signal(FlowMatchEulerDiscreteScheduler(), steps, strength)
    start = matching_timestep(FlowMatchEulerDiscreteScheduler(), steps, kept["signal"])
    back = sample(predict, FlowMatchEulerDiscreteScheduler(), z, steps, start_timestep=start)
    return z, kept, start, back


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_flow_invert_then_sample_returns_the_clip(strength):
    """Euler backwards over the sampler's sigmas then forwards. The point mass's paths are straight,
    so the round trip is exact; a Gaussian's are not, and Euler is first order: the error of the
    round trip halves as the steps double (about 6% of the clip at 50 steps, 1.5% at 200)."""
    torch.manual_seed(0)
    clip = torch.randn(1, 3, 4, 8, 8, dtype=torch.float64) * 0.5
    c = clip.float()
    z, kept, start, back = _round_trip_error(point_mass_velocity(c), c, 50, strength)
    torch.testing.assert_close(back, c, atol=1e-4, rtol=0)
    if strength == 1:
        assert kept["signal"] == 0.0 and start == 1000
    else:
        # it stopped where 30 of the 50 steps reach (sigmas 1 - i 0.999 / 49), and sampling starts there
        assert kept["signal"] == pytest.approx(20 * 0.999 / 49, abs=1e-5)
        assert start == pytest.approx(kept["final_timestep"], abs=1e-3)
        torch.testing.assert_close(z, c + (1 - kept["signal"]) * (-c), atol=1e-4, rtol=0)  # x_s = (1 - s) c
    errors = []
    for steps in (50, 100, 200):
        z, _, _, back = _round_trip_error(gaussian_velocity(0.5), clip, steps, strength)
        errors.append(float((back - clip).pow(2).mean().sqrt() / clip.pow(2).mean().sqrt()))
        if strength == 1:  # the data N(0, 0.25) went to the noise N(0, 1)
            assert abs(float(z.std()) - 1.0) < 0.05
    assert errors[2] < 0.02 and errors[1] < 0.55 * errors[0] and errors[2] < 0.55 * errors[1]


def _diffusers_img2img_start(sched, steps, strength):
    """The first timestep of diffusers' own img2img pipelines (their ``get_timesteps``)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    sched.set_timesteps(steps)
    timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(SimpleNamespace(scheduler=sched), steps, strength, "cpu")
    return timesteps[0]


@pytest.mark.parametrize("config", [DIFFUSION, FLOW])
def test_strength_start_is_diffusers_img2img_rule(config):
    cls = FlowMatchEulerDiscreteScheduler if config is FLOW else DDIMScheduler
    for steps in (4, 8, 16, 32, 64):
        for k in range(1, steps + 1):  # every strength whose step count is whole (and exact in binary)
            strength = k / steps
            assert float(strength_start(cls.from_config(config), steps, strength)) == \
                float(_diffusers_img2img_start(cls.from_config(config), steps, strength))
    # between those, vmc rounds the step count to the nearest (diffusers floors) and runs at
    # least one step (diffusers may run none)
    steps = 8
    for strength in (0.6, 0.7, 0.3, 0.05):
        n = max(1, round(steps * strength))
        assert float(strength_start(cls.from_config(config), steps, strength)) == \
            float(_diffusers_img2img_start(cls.from_config(config), steps, n / steps))


def test_start_noised_noises_to_the_start():
    x, noise = _clip(4)
    sched = DDIMScheduler.from_config(DIFFUSION)
    noisy, start = start_noised(sched, x, noise, 6, 0.5)
    abar = DDPMScheduler.from_config(DIFFUSION).alphas_cumprod[start].double()
    assert start == int(_diffusers_img2img_start(DDIMScheduler.from_config(DIFFUSION), 6, 0.5))
    torch.testing.assert_close(noisy, (abar.sqrt() * x + (1 - abar).sqrt() * noise).float(), atol=2e-6, rtol=0)
    noisy, start = start_noised(FlowMatchEulerDiscreteScheduler(), x, noise, 6, 0.5)
    sigma = start / 1000
    assert sigma == pytest.approx(1 - 3 * 0.999 / 5, abs=1e-4)  # the 4th of 6 sigmas from 1 to 0.001
    torch.testing.assert_close(noisy, (1 - sigma) * x + sigma * noise, atol=1e-6, rtol=0)
    assert math.isfinite(start)


@pytest.mark.parametrize("uncond_first", [False, True])
def test_guided_mixes_only_the_guided_channels(uncond_first):
    """Classifier-free guidance u + g (c - u) on the first ``channels`` output channels, the rest
    (a learned-variance head) from the conditional pass, whichever half of the batch is which."""
    from vmc_cli.method.sampling import guided

    cond, uncond = torch.full((1, 2, 4), 3.0), torch.full((1, 2, 4), -1.0)
    seen = []

    def predict_batched(x, t, text):  # output row = the row's text value, times 1..6 over 6 channels
        seen.append(text[:, 0, 0].tolist())
        return text[:, :1, :1, None, None].expand(x.shape[0], 6, *x.shape[2:]) * torch.arange(1.0, 7).view(1, 6, 1, 1, 1)

    x = torch.zeros(2, 3, 2, 4, 4)
    out = guided(predict_batched, cond, uncond, 7.5, uncond_first=uncond_first, channels=3)(x, torch.tensor([10, 10]))
    assert seen == [[-1.0, -1.0, 3.0, 3.0] if uncond_first else [3.0, 3.0, -1.0, -1.0]]
    k = torch.arange(1.0, 7).view(1, 6, 1, 1, 1)
    expected = torch.cat([(-1 + 7.5 * (3 - -1)) * k[:, :3], 3 * k[:, 3:]], 1).expand_as(out)
    torch.testing.assert_close(out, expected)
    single = guided(predict_batched, cond, None, 7.5, channels=3)(x, torch.tensor([10, 10]))
    torch.testing.assert_close(single, (3 * k).expand_as(single))


def test_flow_noisy_input_in_variance_preserving_form():
    """The x0cos loss is written for x_t = sqrt(abar) x0 + sqrt(1 - abar) eps; a flow schedule's
    x_t = (1 - s) x0 + s eps, divided by sqrt((1 - s)^2 + s^2), is exactly that with the abar of
    the same signal-to-noise ratio, (1 - s)^2 / ((1 - s)^2 + s^2)."""
    x0, eps = _clip(5)
    t = torch.tensor([100.0, 700.0])
    s = _col(t / 1000)
    schedule = Schedule(FLOW)
    abar = _col((1 - t / 1000) ** 2 / ((1 - t / 1000) ** 2 + (t / 1000) ** 2))
    torch.testing.assert_close(schedule.abar(t), abar.flatten())
    vp = schedule.variance_preserving((1 - s) * x0 + s * eps, t)
    torch.testing.assert_close(vp, abar.sqrt() * x0 + (1 - abar).sqrt() * eps, atol=1e-6, rtol=0)
    x_t = torch.randn(2, 3, 4, 6, 5)
    assert Schedule(DIFFUSION).variance_preserving(x_t, t.long()) is x_t


class PointMassFlowBackend(Backend):
    """A flow-matching backend whose data is the single clip ``c``: it states its schedule (a
    FlowMatch config) and returns the exact velocity; the core does the rest."""

    def __init__(self, c):
        self.c, self.device, self.dtype = c, torch.device("cpu"), torch.float32

    def noise_scheduler_config(self):
        return dict(FLOW)

    def encode_text(self, prompts):
        return torch.zeros(len(prompts), 1, 2)

    def model_output(self, x, t, text):
        return point_mass_velocity(self.c)(x, t)


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_pipeline_transfers_with_a_flow_backend(strength):
    """vmc generate's key-frames (MotionPipeline.transfer: invert, then sample with guidance) on a
    flow-matching backend: the samplers get the velocity, not epsilon, so a point mass comes back."""
    from vmc_cli.method.pipeline import MotionPipeline

    c, _ = _clip(6, (1, 3, 4, 6, 5))
    backend = PointMassFlowBackend(c)
    assert is_flow_scheduler(backend.sampling_scheduler()) and is_flow_scheduler(backend.inversion_scheduler())
    out = MotionPipeline(backend).transfer(c, ["a", "b"], steps=12, guidance=4.0, strength=strength)
    torch.testing.assert_close(out, c.expand(2, *c.shape[1:]), atol=1e-4, rtol=0)
    # and the noise it predicts is the true one: x_t = (1 - s) c + s eps
    eps = torch.randn_like(c)
    x_t = 0.7 * c + 0.3 * eps
    torch.testing.assert_close(backend.predict_noise(x_t, torch.tensor([300.0]), torch.zeros(1, 1, 2)), eps,
                               atol=1e-5, rtol=0)
