"""The motion-distillation losses against independent per-element computations and analytic cases."""

import numpy as np
import pytest
import torch

from vmc_cli.method.motion import frame_residuals, motion_distillation_loss


def _ref_cos(pred, true, stride):
    """Paper eq. 17 with loops: 1 - cosine of flattened (C*H*W) residuals, mean over b and n."""
    p, t = pred.numpy().astype(np.float64), true.numpy().astype(np.float64)
    b, c, f, h, w = p.shape
    vals = []
    for i in range(b):
        for n in range(f - stride):
            dp = (p[i, :, n + stride] - p[i, :, n]).ravel()
            dt = (t[i, :, n + stride] - t[i, :, n]).ravel()
            vals.append(1 - dp @ dt / (np.linalg.norm(dp) * np.linalg.norm(dt)))
    return float(np.mean(vals))


def _ref_l2(pred, true, stride, abar):
    """Paper eq. 16: (1 - abar)/abar * mean squared residual difference, mean over b and n."""
    p, t = pred.numpy().astype(np.float64), true.numpy().astype(np.float64)
    b, c, f, h, w = p.shape
    vals = []
    for i in range(b):
        for n in range(f - stride):
            d = (t[i, :, n + stride] - t[i, :, n]) - (p[i, :, n + stride] - p[i, :, n])
            vals.append((1 - abar[i]) / abar[i] * np.mean(d**2))
    return float(np.mean(vals))


def _ref_official(pred, true, stride):
    """Authors' variant: |residuals|, cosine along the frame-difference axis per channel and pixel."""
    p, t = pred.numpy().astype(np.float64), true.numpy().astype(np.float64)
    dp = np.abs(p[:, :, stride:] - p[:, :, :-stride])
    dt = np.abs(t[:, :, stride:] - t[:, :, :-stride])
    b, c, n, h, w = dp.shape
    cos = []
    for idx in np.ndindex(b, c, h, w):
        i, ch, y, x = idx
        a, bb = dp[i, ch, :, y, x], dt[i, ch, :, y, x]
        cos.append(a @ bb / (np.linalg.norm(a) * np.linalg.norm(bb)))
    return 1 - float(np.mean(cos))


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 6, 4, 5, generator=g), torch.randn(2, 3, 6, 4, 5, generator=g)


@pytest.mark.parametrize("stride", [1, 2])
def test_cos_matches_loop_reference(pair, stride):
    pred, true = pair
    got = motion_distillation_loss(pred, true, "cos", stride).item()
    assert got == pytest.approx(_ref_cos(pred, true, stride), rel=1e-5)


@pytest.mark.parametrize("stride", [1, 3])
def test_l2_matches_loop_reference(pair, stride):
    pred, true = pair
    abar = torch.tensor([0.9, 0.2])
    got = motion_distillation_loss(pred, true, "l2", stride, abar).item()
    assert got == pytest.approx(_ref_l2(pred, true, stride, abar.double().numpy()), rel=1e-5)


def test_official_matches_loop_reference(pair):
    pred, true = pair
    got = motion_distillation_loss(pred, true, "official").item()
    assert got == pytest.approx(_ref_official(pred, true, 1), rel=1e-5)


def test_cos_analytic_cases(pair):
    _, true = pair
    # Same motion, different appearance: a per-frame-constant offset cancels in residuals.
    static = torch.randn(2, 3, 1, 4, 5).expand(-1, -1, 6, -1, -1)
    assert motion_distillation_loss(2.0 * true + static, true, "cos").item() == pytest.approx(0.0, abs=1e-6)
    # Reversed motion: cosine -1 everywhere, loss 2.
    assert motion_distillation_loss(-true, true, "cos").item() == pytest.approx(2.0, abs=1e-6)


def test_cos_orthogonal_residuals_give_one():
    true = torch.zeros(1, 1, 2, 1, 2)
    true[0, 0, 1, 0, 0] = 1.0  # residual (1, 0)
    pred = torch.zeros(1, 1, 2, 1, 2)
    pred[0, 0, 1, 0, 1] = 3.0  # residual (0, 3)
    assert motion_distillation_loss(pred, true, "cos").item() == pytest.approx(1.0)


def test_l2_analytic_ramp():
    # pred = true + c * frame index: every residual differs by exactly c.
    true = torch.randn(2, 3, 5, 2, 2)
    c = 0.5
    ramp = c * torch.arange(5.0).view(1, 1, 5, 1, 1)
    abar = torch.tensor([0.5, 0.25])  # weights 1 and 3
    got = motion_distillation_loss(true + ramp, true, "l2", 1, abar).item()
    assert got == pytest.approx((1.0 + 3.0) / 2 * c**2, rel=1e-6)


def test_official_is_blind_to_the_sign_of_motion(pair):
    _, true = pair
    # The released variant takes absolute values: reversed motion scores perfectly...
    assert motion_distillation_loss(-true, true, "official").item() == pytest.approx(0.0, abs=1e-6)
    # ...while the paper's cosine loss does not.
    assert motion_distillation_loss(-true, true, "cos").item() == pytest.approx(2.0, abs=1e-6)


def test_gradient_flows_to_prediction(pair):
    pred, true = pair
    pred = pred.clone().requires_grad_(True)
    motion_distillation_loss(pred, true, "cos").backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_bad_inputs(pair):
    pred, true = pair
    with pytest.raises(ValueError, match="abar"):
        motion_distillation_loss(pred, true, "l2")
    with pytest.raises(ValueError, match="unknown loss"):
        motion_distillation_loss(pred, true, "huber")
    with pytest.raises(ValueError, match="stride"):
        frame_residuals(pred, 6)
    with pytest.raises(ValueError, match="shape"):
        motion_distillation_loss(pred, true[:, :, :5])


def _ref_x0cos(pred, true, x_t, stride, abar):
    """Eq. 15 with the cosine: Tweedie's x0 from predicted and from true noise, frame residuals,
    1 - cosine of each flattened residual, mean over b and n (loops, float64)."""
    p, t, x = (a.numpy().astype(np.float64) for a in (pred, true, x_t))
    b, c, f, h, w = p.shape
    vals = []
    for i in range(b):
        x0p = (x[i] - np.sqrt(1 - abar[i]) * p[i]) / np.sqrt(abar[i])
        x0t = (x[i] - np.sqrt(1 - abar[i]) * t[i]) / np.sqrt(abar[i])
        for n in range(f - stride):
            dp = (x0p[:, n + stride] - x0p[:, n]).ravel()
            dt = (x0t[:, n + stride] - x0t[:, n]).ravel()
            vals.append(1 - dp @ dt / (np.linalg.norm(dp) * np.linalg.norm(dt)))
    return float(np.mean(vals))


@pytest.mark.parametrize("stride", [1, 3])
def test_x0cos_matches_tweedie_reference(pair, stride):
    pred, true = pair
    x_t = torch.randn(pred.shape, generator=torch.Generator().manual_seed(7))
    abar = torch.tensor([0.9, 0.02])
    got = motion_distillation_loss(pred, true, "x0cos", stride, abar, x_t).item()
    assert got == pytest.approx(_ref_x0cos(pred, true, x_t, stride, abar.numpy()), rel=1e-5)


def test_x0cos_sees_motion_the_noise_cosine_misses():
    """At high noise the predicted noise residual is almost x_t's own, so the eps cosine is ~0
    for a prediction whose clean motion is the opposite of the true one; the x0 cosine
    reports it (2: every denoised residual points the other way)."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 3, 4, 8, 8, generator=g)
    eps = torch.randn(1, 3, 4, 8, 8, generator=g)
    abar = torch.tensor([0.001])
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    # The noise a model would predict if it believed in the opposite motion (negated residuals).
    opposite = 2 * x0[:, :, :1] - x0
    pred = (x_t - abar.sqrt() * opposite) / (1 - abar).sqrt()
    assert motion_distillation_loss(pred, eps, "cos").item() < 0.01
    assert motion_distillation_loss(pred, eps, "x0cos", abar=abar, x_t=x_t).item() == pytest.approx(2.0, abs=1e-4)
    assert motion_distillation_loss(eps, eps, "x0cos", abar=abar, x_t=x_t).item() == pytest.approx(0, abs=1e-6)


def test_x0cos_needs_x_t_and_abar(pair):
    pred, true = pair
    with pytest.raises(ValueError, match="x_t"):
        motion_distillation_loss(pred, true, "x0cos", abar=torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="abar"):
        motion_distillation_loss(pred, true, "x0cos", x_t=pred)


def test_noise_loss_is_plain_mse(pair):
    pred, true = pair
    ref = float(np.mean((pred.numpy().astype(np.float64) - true.numpy()) ** 2))
    assert motion_distillation_loss(pred, true, "noise").item() == pytest.approx(ref, rel=1e-6)
