"""Barlow Twins: the cross-correlation of the two views' batch-normalised embeddings driven to the identity."""

from __future__ import annotations

import torch

from cpc.losses.collectives import all_reduce_sum


def batch_standardize(z: torch.Tensor, weights: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Columns to zero mean, unit (biased) variance over the GLOBAL batch, rows weighted by `weights` (B,)
    whose global sum is the row count."""
    z = z.float()
    w = weights[:, None]
    count = all_reduce_sum(weights.sum())
    mean = all_reduce_sum((z * w).sum(0)) / count
    var = all_reduce_sum(((z - mean) ** 2 * w).sum(0)) / count
    return (z - mean) / torch.sqrt(var + eps)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, scale: float = 1.0,
                      valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """z1, z2 (B, D) on this rank -> (scale x (sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2),
    mean diagonal of C), with C the D x D cross-correlation over the global batch; `valid` (B,) 1/0 leaves
    padding rows out."""
    weights = z1.new_ones(len(z1), dtype=torch.float32) if valid is None else valid.float()
    a, b = batch_standardize(z1, weights), batch_standardize(z2, weights)
    c = all_reduce_sum((a * weights[:, None]).T @ b) / all_reduce_sum(weights.sum())
    diagonal = torch.diagonal(c)
    on = (1 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return scale * (on + lambd * off), diagonal.mean().detach()
