"""MoCo's InfoNCE: a query against its key (the momentum encoder's view) and a queue of past keys."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cpc.losses.ntxent import unit, weighted_mean


def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2,
                 valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, D) queries, k (B, D) their keys (no gradient), queue (Q, D) unit negatives ->
    (cross-entropy with the key as class 0, top-1 accuracy), rows weighted by `valid` (B,) if given."""
    q, k = unit(q), unit(k).detach()
    positive = (q * k).sum(1, keepdim=True)
    negative = q @ queue.float().T
    logits = torch.cat([positive, negative], dim=1) / temperature
    targets = torch.zeros(len(q), dtype=torch.long, device=q.device)
    loss = weighted_mean(F.cross_entropy(logits, targets, reduction="none"), valid)
    return loss, weighted_mean((logits.argmax(1) == 0).float(), valid)
