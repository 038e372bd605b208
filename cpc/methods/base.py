"""What every method shares: the interface the trainer drives, the weight-decay parameter split, and the momentum
(EMA) targets of methods that declare (online, target) pairs, advanced once after each real optimiser step."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class Method(nn.Module):
    """A self-supervised objective: `training_step(batch) -> (loss, logs)`; the trainer does the rest.
    `exported` names the attribute holding the model a checkpoint is loaded as (`cpc.load`)."""

    exported = "model"

    @classmethod
    def data_kind(cls, config: Any) -> str:
        """What the method reads, given its config: "audio", "video" or "images"."""
        raise NotImplementedError

    @classmethod
    def stream_options(cls, config: Any) -> dict[str, Any]:
        """What the stream of its data kind needs from the method (e.g. the model's sample rate); none by default."""
        return {}

    @classmethod
    def build(cls, config: Any, steps: int) -> "Method":
        """The method for a run of `steps` optimiser steps (a schedule may span the run); by default cls(config)."""
        return cls(config)

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

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) modules whose target follows the online one by EMA (MoCo, BYOL); none by default."""
        return []

    def momentum(self, step: int) -> float:
        """The EMA momentum applied after optimiser step `step` (1-based)."""
        return 0.0

    def after_optimiser_step(self, step: int) -> None:
        """The trainer calls this after each real optimiser step (not after accumulation micro-steps): one fused
        EMA over every momentum pair, then the method's own `on_after_step`."""
        pairs = self.momentum_pairs()
        if pairs:
            ema_update(pairs, self.momentum(step))
        self.on_after_step(step)

    def on_after_step(self, step: int) -> None:
        """A method's own bookkeeping after optimiser step `step` (schedules, warnings)."""


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser groups: weights with decay; biases and norm gains (every tensor of rank <= 1) without."""
    decay = [p for p in module.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.dim() <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy that follows `module` by EMA; its weights are parameters (saved in checkpoints, moved with
    .to()) that no optimiser sees (requires_grad False keeps them out of param_groups and DDP's all-reduce)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online for every pair, parameters and float buffers (BN
    statistics) in one fused `_foreach_lerp_`; integer buffers (batch counts) are copied. `momentum` is a Python
    float, so no host-device sync."""
    targets, onlines, counts = [], [], []
    for online, target in pairs:
        targets += list(target.parameters())
        onlines += [p.detach() for p in online.parameters()]
        for t, o in zip(target.buffers(), online.buffers()):
            if t.dtype.is_floating_point:
                targets.append(t)
                onlines.append(o)
            else:
                counts.append((t, o))
    torch._foreach_lerp_(targets, onlines, 1 - momentum)
    for t, o in counts:
        t.copy_(o)
