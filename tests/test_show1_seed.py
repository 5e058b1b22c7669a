"""Show-1's pixel stages are reproducible from --seed: a stochastic scheduler (DDPM adds noise at
every step) draws it from the stage's seeded generator, not from torch's global random state,
also through the float32-step wrapper the stages use."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from vmc_show1.schedulers import scheduler_from_config
from vmc_show1.stages import denoise_pixels


class ZeroUNet(torch.nn.Module):
    """Predicts epsilon 0 for 3 channels: every difference between runs is the scheduler's noise."""

    def forward(self, x, t, encoder_hidden_states=None, class_labels=None):
        return SimpleNamespace(sample=torch.zeros(x.shape[0], 3, *x.shape[2:]))


def run(global_seed: int, generator_seed: int) -> torch.Tensor:
    torch.manual_seed(global_seed)
    scheduler = scheduler_from_config({"_class_name": "DDPMScheduler", "num_train_timesteps": 1000})
    noise = torch.randn(1, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    text = torch.zeros(1, 2, 8)
    return denoise_pixels(ZeroUNet(), scheduler, noise, noise[:, :0], text, text, steps=5, guidance=1.0,
                          generator=torch.Generator().manual_seed(generator_seed))


def test_a_ddpm_stage_takes_its_noise_from_the_seeded_generator():
    same = run(1, 7), run(2, 7)  # the global state differs, the stage's seed does not
    assert torch.equal(*same)
    assert not torch.allclose(run(1, 7), run(1, 8))  # the seed does reach the noise
