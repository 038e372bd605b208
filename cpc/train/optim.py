"""Optimisers (Adam, AdamW, SGD with momentum, LARS) and the learning-rate schedule (linear warm-up, then cosine
or constant), built from one config."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cpc.config import Rules

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

    def check(self, rules: Rules) -> None:
        """A ConfigError for the first setting of this section (`rules`, e.g. optim) that cannot work."""
        rules.at_least(1, "accumulate")
        rules.at_least(0, "warmup_steps", "weight_decay")
        rules.positive("lr", "grad_clip")
        if not 0 <= self.min_lr_ratio <= 1:
            rules.fail([rules.key("min_lr_ratio")], f"{rules.key('min_lr_ratio')} is {self.min_lr_ratio!r}",
                       "it must lie in [0, 1]")
        rules.one_of("name", OPTIMISERS)
        rules.one_of("schedule", SCHEDULES)


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017); groups with weight_decay 0 (biases, norms)
    skip the trust ratio, as in the SimCLR/BYOL setups. No host sync: the trust ratio is chosen with torch.where,
    and like the fused optimisers it reads the trainer's `found_inf` (skip the step on the device) and a grad
    scaler's `grad_scale`."""

    _step_supports_amp_scaling = True  # GradScaler hands over grad_scale / found_inf instead of unscaling

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        grad_scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            updates = [p.grad if grad_scale is None else p.grad / grad_scale for p in params]
            if group["weight_decay"] > 0:
                updates = torch._foreach_add(updates, params, alpha=group["weight_decay"])
                ratios = [torch.where((w > 0) & (u > 0), group["eta"] * w / u, torch.ones_like(w))
                          for w, u in zip(torch._foreach_norm(params), torch._foreach_norm(updates))]
                updates = torch._foreach_mul(updates, ratios)
            buffers = [self.state[p].setdefault("momentum", torch.zeros_like(p)) for p in params]
            moved = torch._foreach_add(torch._foreach_mul(buffers, group["momentum"]), updates)
            if found_inf is not None:  # a skipped step leaves buffers (and so weights) as they were
                moved = [torch.where(found_inf > 0, old, new) for old, new in zip(buffers, moved)]
            torch._foreach_copy_(buffers, moved)
            # Kept buffers are finite, so scaling by (1 - found_inf) zeroes a skipped step's update exactly.
            steps = buffers if found_inf is None else torch._foreach_mul(buffers, 1 - found_inf)
            torch._foreach_add_(params, steps, alpha=-group["lr"])
        return loss


def build_optimiser(param_groups: list[dict], config: OptimConfig) -> torch.optim.Optimizer:
    """The fused implementations: one kernel per group, and they skip a step on the device when the trainer
    sets `found_inf` (no host sync per step)."""
    if config.name == "adam":
        return torch.optim.Adam(param_groups, lr=config.lr, betas=config.betas, fused=True)
    if config.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=config.lr, betas=config.betas, fused=True)
    if config.name == "sgd":
        sgd = torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum, fused=True)
        # Fused SGD allocates its momentum buffers uninitialised at the first step and fills them from the
        # gradients; if that step is skipped (found_inf, e.g. fp16's first steps) they stay garbage. Zeros first
        # give the same first step (dampening 0: buffer = gradient) and a skipped one leaves them zero.
        for group in sgd.param_groups:
            for p in group["params"]:
                sgd.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return sgd
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
