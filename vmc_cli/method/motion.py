"""Motion-distillation losses (VMC, Jeong et al., CVPR 2024, eqs. 16-17).

Pure tensor functions. Inputs are noise tensors shaped
(batch, channels, frames, height, width): the noise the model predicted and
the noise that was really added. The "motion vector" of a clip at stride ``c``
is the residual between frames ``n + c`` and ``n``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vmc_cli.method.tune_config import LOSSES  # one list, shared with option checking


def frame_residuals(x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """``x[:, :, n + stride] - x[:, :, n]`` for every valid ``n``.

    (batch, channels, frames, height, width) -> (batch, channels, frames - stride, height, width)
    """
    if x.ndim != 5:
        raise ValueError(f"expected (batch, channels, frames, height, width), got shape {tuple(x.shape)}")
    if not 1 <= stride < x.shape[2]:
        raise ValueError(f"stride must be between 1 and frames - 1 ({x.shape[2] - 1}), got {stride}")
    return x[:, :, stride:] - x[:, :, :-stride]


def motion_distillation_loss(
    eps_pred: torch.Tensor,
    eps_true: torch.Tensor,
    kind: str = "cos",
    stride: int = 1,
    abar: torch.Tensor | None = None,
    x_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar motion-distillation loss between predicted and true noise residuals.

    - ``cos`` (paper eq. 17, the paper's choice): mean over batch and frame
      pairs of ``1 - cos(d_true, d_pred)``, each residual flattened over
      channels x height x width.
    - ``l2`` (paper eq. 16): mean over batch and frame pairs of
      ``(1 - abar) / abar * mean((d_true - d_pred) ** 2)``; ``abar`` holds the
      cumulative signal rate of each batch element's timestep, shape (batch,).
    - ``official``: the authors' released variant: absolute values of both
      residuals, cosine taken along the frame-difference axis (one
      (frames - stride)-long vector per channel and pixel), ``1 - mean``.
    - ``x0cos``: the cosine form on the *denoised* motion vectors the paper derives
      its losses from (eq. 15): Tweedie's estimate ``x0 = (x_t - sqrt(1 - abar) eps)
      / sqrt(abar)`` from the predicted and from the true noise, residuals between
      frames, ``1 - cos`` per frame pair as in ``cos``. Needs ``x_t`` (the noisy
      input, same shape) and ``abar``. Unlike ``cos`` it does not saturate at high
      noise, where the noise residual is nearly all of ``x_t``'s and trivially right.
    - ``noise``: plain noise matching, ``mean((eps_pred - eps_true) ** 2)`` (no
      residuals): the diffusion training loss, a reference, not VMC.
    """
    if eps_pred.shape != eps_true.shape:
        raise ValueError(f"shape mismatch: {tuple(eps_pred.shape)} vs {tuple(eps_true.shape)}")
    if kind == "noise":
        return F.mse_loss(eps_pred.float(), eps_true.float())
    d_pred = frame_residuals(eps_pred.float(), stride)
    d_true = frame_residuals(eps_true.float(), stride)
    b, c, n, h, w = d_pred.shape

    def per_frame_cos(p, t):  # 1 - cosine of each frame pair's residual over channels x height x width
        p = p.permute(0, 2, 1, 3, 4).reshape(b, n, c * h * w)
        t = t.permute(0, 2, 1, 3, 4).reshape(b, n, c * h * w)
        return (1.0 - F.cosine_similarity(p, t, dim=-1, eps=1e-8)).mean()

    def per_sample(abar):
        if abar is None:
            raise ValueError(f"the {kind} loss needs abar (cumulative signal rate per batch element)")
        abar = torch.as_tensor(abar, dtype=torch.float32, device=d_pred.device).reshape(-1)
        if abar.numel() == 1 and b > 1:
            abar = abar.expand(b)
        if abar.numel() != b:
            raise ValueError(f"abar needs one value per batch element ({b}), got {abar.numel()}")
        return abar

    if kind == "cos":
        return per_frame_cos(d_pred, d_true)
    if kind == "x0cos":
        if x_t is None or x_t.shape != eps_pred.shape:
            raise ValueError("the x0cos loss needs x_t, the noisy input, shaped like the noise")
        sigma = (1.0 - per_sample(abar)).sqrt().view(b, 1, 1, 1, 1)
        d_x = frame_residuals(x_t.float(), stride)
        # The common 1 / sqrt(abar) of Tweedie's estimate cancels in the cosine.
        return per_frame_cos(d_x - sigma * d_pred, d_x - sigma * d_true)
    if kind == "l2":
        abar = per_sample(abar)
        weight = (1.0 - abar) / abar
        mse = ((d_true - d_pred) ** 2).mean(dim=(1, 3, 4))  # (batch, frame pairs)
        return (weight[:, None] * mse).mean()
    if kind == "official":
        cos = F.cosine_similarity(d_pred.abs(), d_true.abs(), dim=2, eps=1e-8)  # (b, c, h, w)
        return 1.0 - cos.mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
