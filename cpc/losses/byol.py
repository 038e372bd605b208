"""BYOL's regression loss between the online prediction and the target projection."""

from __future__ import annotations

import torch

from cpc.losses.ntxent import unit


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) averaged over rows; z is the target (no gradient)."""
    return (2 - 2 * (unit(p) * unit(z).detach()).sum(-1)).mean()
