"""SimCLR's NT-Xent in cross-entropy form, with negatives from the whole global batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cpc.losses.collectives import gather, gather_no_grad, world


def unit(x: torch.Tensor) -> torch.Tensor:
    """L2-normalised rows in float32: under fp16, F.normalize's eps (1e-12) underflows and gives NaN."""
    return F.normalize(x.float(), dim=-1, eps=1e-6)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2,
            valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """z1, z2 (B, D): two views' projections on this rank. Every row scores its other view against the 2 N - 2
    other rows of the global batch (N = B x world); returns (mean cross-entropy over this rank's 2 B rows,
    top-1 accuracy of finding the other view). `valid` (B,) 1/0 marks real rows: padding rows are no one's
    negative and weigh nothing in the means."""
    rank, _ = world()
    local = unit(torch.cat([z1, z2]))  # (2B, D): this rank's rows, view 1 then view 2
    everyone = gather(local)  # (2B x world, D), rank-major
    b = z1.shape[0]
    offset = rank * 2 * b
    logits = local @ everyone.T / temperature
    rows = torch.arange(2 * b, device=local.device)
    logits[rows, offset + rows] = float("-inf")  # a row is not its own negative
    targets = offset + (rows + b) % (2 * b)  # the other view of the same image
    weights = None
    if valid is not None:
        weights = torch.cat([valid, valid]).float()
        logits = logits.masked_fill(gather_no_grad(weights)[None, :] == 0, float("-inf"))
    loss = weighted_mean(F.cross_entropy(logits, targets, reduction="none"), weights)
    accuracy = weighted_mean((logits.argmax(1) == targets).float(), weights)
    return loss, accuracy


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The mean of `values` (rows first), rows weighted by `weights` (None: equal)."""
    if weights is None:
        return values.mean()
    weights = weights.to(values.dtype)
    values = torch.where(weights > 0, values, 0)  # a padding row's loss may be inf (its target is padding)
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)
