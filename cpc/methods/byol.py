"""BYOL (Grill et al. 2020): the online network predicts the EMA target's projection of the other view. The
target momentum follows a cosine from tau_base to 1 over the run and advances only on real optimiser steps."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from cpc.losses.byol import byol_loss
from cpc.methods.base import momentum_copy
from cpc.methods.image import ImageMethod, ImageMethodConfig, cosine_momentum
from cpc.models.heads import mlp


@dataclass
class BYOLConfig(ImageMethodConfig):
    proj_hidden: int = 4096
    proj_dim: int = 256
    pred_hidden: int = 4096
    tau_base: float = 0.99  # 0.996 in the ImageNet paper, 0.99 for CIFAR-sized runs
    total_steps: int = 0  # the schedule's length; 0: the run's train.steps


class BYOL(ImageMethod):
    views = "byol"

    @classmethod
    def build(cls, config: BYOLConfig, steps: int) -> "BYOL":
        """The momentum schedule spans the run (`steps`) unless total_steps says otherwise."""
        return cls(config if config.total_steps else replace(config, total_steps=steps))

    def __init__(self, config: BYOLConfig = BYOLConfig()):
        super().__init__(config)
        self.online = nn.Sequential(self.backbone, mlp((self.backbone.dim, config.proj_hidden, config.proj_dim)))
        self.predictor = mlp((config.proj_dim, config.pred_hidden, config.proj_dim))
        self.target = momentum_copy(self.online)
        # The momentum the next step's EMA uses, logged; a buffer, so checkpoints carry it.
        self.register_buffer("tau", torch.tensor(config.tau_base, dtype=torch.float64))

    def losses(self, x1: torch.Tensor, x2: torch.Tensor, valid: torch.Tensor | None = None):
        p1, p2 = self.predictor(self.online(torch.cat([x1, x2]))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target(torch.cat([x1, x2])).chunk(2)
        loss = (byol_loss(p1, z2, valid) + byol_loss(p2, z1, valid)) / 2
        return loss, {"byol": loss.detach(), "tau": self.tau.float()}

    def momentum_pairs(self):
        return [(self.online, self.target)]

    def momentum(self, step: int) -> float:
        """Optimiser step `step` (1-based) moves the target with the schedule's value at step - 1: computed on the
        host from the step number, never read back from the device."""
        return cosine_momentum(self.config.tau_base, step - 1, self.config.total_steps)

    def on_after_step(self, step: int) -> None:
        self.tau.fill_(cosine_momentum(self.config.tau_base, step, self.config.total_steps))
