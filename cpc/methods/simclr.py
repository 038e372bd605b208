"""SimCLR (Chen et al. 2020): NT-Xent between two views' projections, negatives from the global batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cpc.losses.ntxent import nt_xent
from cpc.methods.image import ImageMethod, ImageMethodConfig
from cpc.models.heads import mlp


@dataclass
class SimCLRConfig(ImageMethodConfig):
    temperature: float = 0.2


class SimCLR(ImageMethod):
    def __init__(self, config: SimCLRConfig = SimCLRConfig()):
        super().__init__(config)
        self.projector = mlp((self.backbone.dim, config.proj_hidden, config.proj_dim))

    def losses(self, x1: torch.Tensor, x2: torch.Tensor, valid: torch.Tensor | None = None):
        z = self.projector(self.backbone(torch.cat([x1, x2])))  # one pass: BN statistics over both views
        loss, accuracy = nt_xent(*z.chunk(2), self.config.temperature, valid)
        return loss, {"ntxent": loss.detach(), "accuracy": accuracy}
