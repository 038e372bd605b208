"""Barlow Twins (Zbontar et al. 2021): the cross-correlation of the views' batch-normalised projections over the
global batch, driven to the identity (diagonal 1, off-diagonal 0 weighted by lambda)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cpc.losses.barlow import barlow_twins_loss
from cpc.methods.image import ImageMethod, ImageMethodConfig
from cpc.models.heads import mlp


@dataclass
class BarlowTwinsConfig(ImageMethodConfig):
    proj_hidden: int = 2048
    proj_dim: int = 2048
    lambd: float = 0.0051
    scale: float = 0.1  # solo-learn's CIFAR setting; 1.0 in the paper (ImageNet)


class BarlowTwins(ImageMethod):
    views = "byol"

    def __init__(self, config: BarlowTwinsConfig = BarlowTwinsConfig()):
        super().__init__(config)
        self.projector = mlp((self.backbone.dim, config.proj_hidden, config.proj_hidden, config.proj_dim))

    def losses(self, x1: torch.Tensor, x2: torch.Tensor, valid: torch.Tensor | None = None):
        z1, z2 = self.projector(self.backbone(torch.cat([x1, x2]))).chunk(2)
        loss, diagonal = barlow_twins_loss(z1, z2, self.config.lambd, self.config.scale, valid)
        return loss, {"barlow": loss.detach(), "diagonal": diagonal}
