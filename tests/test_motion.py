"""The motion-distillation losses against independent per-element computations and analytic cases."""

import numpy as np
import pytest
import torch

from vmc_cli.motion import frame_residuals, motion_distillation_loss


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
