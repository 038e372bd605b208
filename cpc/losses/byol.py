"""BYOL's regression loss between the online prediction and the target projection."""

from __future__ import annotations

import torch

from cpc.losses.ntxent import unit, weighted_mean


def byol_loss(p: torch.Tensor, z: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """2 - 2 cos(p, z) averaged over rows (weighted by `valid` (B,) if given); z is the target (no gradient)."""
    return weighted_mean(2 - 2 * (unit(p) * unit(z).detach()).sum(-1), valid)
