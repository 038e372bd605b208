"""What every method shares: the interface the trainer drives and the weight-decay parameter split."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Method(nn.Module):
    """A self-supervised objective: `training_step(batch) -> (loss, logs)`; the trainer does the rest."""

    def training_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # DDP prepares its gradient all-reduce only when the wrapped module's forward runs.
        return self.training_step(batch)

    def throughput(self, batch: dict[str, Any]) -> tuple[float, str]:
        """How much data a batch holds, and its unit, for the progress bar and the log."""
        first = next(v for v in batch.values() if isinstance(v, torch.Tensor))
        return float(first.shape[0]), "samples"

    def param_groups(self, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        return decay_groups(self, weight_decay)

    def on_after_step(self, step: int) -> None:
        """Called after each real optimiser step (not after accumulation micro-steps)."""


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser groups: weights with decay; biases and norm gains (every tensor of rank <= 1) without."""
    decay = [p for p in module.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.dim() <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
