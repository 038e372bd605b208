"""MoCo's InfoNCE: a query against its key (the momentum encoder's view) and a queue of past keys."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cpc.losses.ntxent import unit


def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                 temperature: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, D) queries, k (B, D) their keys (no gradient), queue (Q, D) unit negatives ->
    (cross-entropy with the key as class 0, top-1 accuracy)."""
    q, k = unit(q), unit(k).detach()
    positive = (q * k).sum(1, keepdim=True)
    negative = q @ queue.float().T
    logits = torch.cat([positive, negative], dim=1) / temperature
    targets = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets), (logits.argmax(1) == 0).float().mean()
