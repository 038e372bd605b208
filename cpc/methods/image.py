"""What the image baselines share: a backbone from the encoder registry, two augmented views per image, BYOL's
momentum schedule, and exporting the backbone alone."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from cpc.methods.base import Method
from cpc.models.encoders import ImageEncoder, ImageEncoderConfig


@dataclass
class ImageMethodConfig:
    backbone: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    proj_hidden: int = 2048
    proj_dim: int = 128


class ImageMethod(Method):
    """batch {"views": (B, 2, C, H, W)} -> loss; subclasses define `losses(x1, x2)` and the view augmentations
    they were published with (`views`: "simclr" or "byol", see cpc.data.images.TwoViews)."""

    exported = "backbone"
    views = "simclr"

    @classmethod
    def data_kind(cls, config) -> str:
        return "images"

    @classmethod
    def stream_options(cls, config) -> dict[str, Any]:
        """The view augmentations the method was published with, unless data.views names others."""
        return {"views": cls.views}

    def __init__(self, config: ImageMethodConfig):
        super().__init__()
        self.config = config
        self.backbone = ImageEncoder(config.backbone)

    def training_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        views = batch.get("views")
        if views is None or views.dim() != 5 or views.shape[1] != 2:
            shape = None if views is None else tuple(views.shape)
            raise ValueError(f"{type(self).__name__} needs batch['views'] of shape (batch, 2, C, H, W); got {shape}")
        loss, logs = self.losses(views[:, 0], views[:, 1], batch.get("valid"))
        logs["loss"] = loss.detach()
        return loss, logs

    def losses(self, x1: torch.Tensor, x2: torch.Tensor,
               valid: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The two views' loss and logs; `valid` (B,) 1/0 marks real rows (lockstep validation pads batches)."""
        raise NotImplementedError

    def throughput(self, batch: dict[str, Any]) -> tuple[float, str]:
        return float(batch["views"].shape[0]), "images"

    def export_backbone(self, path: str | Path) -> None:
        """The backbone alone, with its config: `load_backbone(path)` rebuilds it."""
        from cpc.config import to_dict

        torch.save({"backbone_config": to_dict(self.config.backbone), "state_dict": self.backbone.state_dict()},
                   path)


def load_backbone(path: str | Path) -> ImageEncoder:
    from cpc.config import from_dict

    state = torch.load(path, map_location="cpu", weights_only=True)
    if "backbone_config" not in state:
        raise ValueError(f"{path} is not a backbone written by export_backbone()")
    backbone = ImageEncoder(from_dict(ImageEncoderConfig, state["backbone_config"]))
    backbone.load_state_dict(state["state_dict"])
    return backbone.eval()


def cosine_momentum(base: float, step: int, total: int) -> float:
    """BYOL's schedule: base at step 0 rising to 1 at `total` along a half cosine."""
    progress = min(step, total) / max(total, 1)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2
