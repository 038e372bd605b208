"""Barlow Twins: the cross-correlation of the two views' batch-normalised embeddings driven to the identity."""

from __future__ import annotations

import torch

from cpc.losses.collectives import all_reduce_sum


def batch_standardize(z: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, float]:
    """Columns to zero mean, unit (biased) variance over the GLOBAL batch -> (z normalised, global row count)."""
    z = z.float()
    count = all_reduce_sum(torch.tensor(float(len(z)), device=z.device))
    mean = all_reduce_sum(z.sum(0)) / count
    var = all_reduce_sum(((z - mean) ** 2).sum(0)) / count
    return (z - mean) / torch.sqrt(var + eps), count


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051,
                      scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """z1, z2 (B, D) on this rank -> (scale x (sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2),
    mean diagonal of C), with C the D x D cross-correlation over the global batch."""
    a, count = batch_standardize(z1)
    b, _ = batch_standardize(z2)
    c = all_reduce_sum(a.T @ b) / count
    diagonal = torch.diagonal(c)
    on = (1 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return scale * (on + lambd * off), diagonal.mean().detach()
