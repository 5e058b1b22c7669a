"""Motion-distillation losses (VMC, Jeong et al., CVPR 2024, eqs. 16-17).

Pure tensor functions. Inputs are noise tensors shaped
(batch, channels, frames, height, width): the noise the model predicted and
the noise that was really added. The "motion vector" of a clip at stride ``c``
is the residual between frames ``n + c`` and ``n``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("cos", "l2", "official")


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
    """
    if eps_pred.shape != eps_true.shape:
        raise ValueError(f"shape mismatch: {tuple(eps_pred.shape)} vs {tuple(eps_true.shape)}")
    d_pred = frame_residuals(eps_pred.float(), stride)
    d_true = frame_residuals(eps_true.float(), stride)
    b, c, n, h, w = d_pred.shape
    if kind == "cos":
        p = d_pred.permute(0, 2, 1, 3, 4).reshape(b, n, c * h * w)
        t = d_true.permute(0, 2, 1, 3, 4).reshape(b, n, c * h * w)
        return (1.0 - F.cosine_similarity(p, t, dim=-1, eps=1e-8)).mean()
    if kind == "l2":
        if abar is None:
            raise ValueError("the l2 loss needs abar (cumulative signal rate per batch element)")
        abar = torch.as_tensor(abar, dtype=torch.float32, device=d_pred.device).reshape(-1)
        if abar.numel() == 1 and b > 1:
            abar = abar.expand(b)
        if abar.numel() != b:
            raise ValueError(f"abar needs one value per batch element ({b}), got {abar.numel()}")
        weight = (1.0 - abar) / abar
        mse = ((d_true - d_pred) ** 2).mean(dim=(1, 3, 4))  # (batch, frame pairs)
        return (weight[:, None] * mse).mean()
    if kind == "official":
        cos = F.cosine_similarity(d_pred.abs(), d_true.abs(), dim=2, eps=1e-8)  # (b, c, h, w)
        return 1.0 - cos.mean()
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
