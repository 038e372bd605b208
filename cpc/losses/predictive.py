"""Predictive-coding regression (APC-style): predict the target frames k = 1..K steps ahead with MSE or L1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from cpc.losses.infonce import per_step_mean

REGRESSION_LOSSES = ("mse", "l1")


def predictive_coding_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse",
                           weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """pred (B, T, K, D): row [:, t, k-1] predicts target[:, t+k]; target (B, T, D).
    Returns the mean over steps and the per-step losses (K,), over positions t = 0 .. T-K-1, sequences weighted
    by `weights` (B,) if given."""
    if kind not in REGRESSION_LOSSES:
        raise ValueError(f"unknown regression loss {kind!r}; choose one of {REGRESSION_LOSSES}")
    steps = pred.shape[2]
    positions = target.shape[1] - steps
    if positions < 1:
        raise ValueError(f"K = {steps} prediction steps need more than {steps} frames; the sequence has {target.shape[1]}")
    future = rearrange(target[:, 1:].unfold(1, steps, 1), "b p d k -> b p k d")
    distance = F.mse_loss if kind == "mse" else F.l1_loss
    per_element = distance(pred[:, :positions].float(), future.float(), reduction="none")
    per_step = per_step_mean(per_element.mean(dim=3), weights)
    return per_step.mean(), per_step
