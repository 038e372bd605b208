"""Optimisers (Adam, AdamW, SGD with momentum, LARS) and the learning-rate schedule (linear warm-up, then cosine
or constant), built from one config."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

OPTIMISERS = ("adam", "adamw", "sgd", "lars")
SCHEDULES = ("constant", "cosine")


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 2e-4
    weight_decay: float = 0.0  # never applied to biases and norm gains (see Method.param_groups)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9  # sgd, lars
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    grad_clip: float | None = None  # max global gradient norm
    accumulate: int = 1  # micro-batches per optimiser step


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017); groups with weight_decay 0 (biases, norms)
    skip the trust ratio, as in the SimCLR/BYOL setups."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if group["weight_decay"] > 0:
                    update = update.add(p, alpha=group["weight_decay"])
                    weight_norm, update_norm = p.norm(), update.norm()
                    if weight_norm > 0 and update_norm > 0:
                        update = update * (group["eta"] * weight_norm / update_norm)
                buffer = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buffer.mul_(group["momentum"]).add_(update)
                p.add_(buffer, alpha=-group["lr"])
        return loss


def build_optimiser(param_groups: list[dict], config: OptimConfig) -> torch.optim.Optimizer:
    if config.name == "adam":
        return torch.optim.Adam(param_groups, lr=config.lr, betas=config.betas)
    if config.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=config.lr, betas=config.betas)
    if config.name == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum)
    if config.name == "lars":
        return LARS(param_groups, lr=config.lr, momentum=config.momentum)
    raise ValueError(f"unknown optimiser {config.name!r}; choose one of {OPTIMISERS}")


def lr_factor(step: int, total: int, config: OptimConfig) -> float:
    """Multiplier of the base lr at optimiser step `step` (0-based) of `total`."""
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}; choose one of {SCHEDULES}")
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_schedule(optimiser: torch.optim.Optimizer, total: int, config: OptimConfig):
    lr_factor(0, total, config)  # validates the schedule name before training starts
    return torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: lr_factor(step, total, config))
