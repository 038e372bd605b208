"""Prediction heads W_k: context c_t -> predictions of the frames k = 1..K steps ahead, all K in one module."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from cpc.models.autoregressive import CausalTransformerLayer

PREDICTOR_KINDS = ("linear", "transformer", "none")


@dataclass
class PredictorConfig:
    kind: str = "linear"  # "linear" (the paper's W_k), "transformer" (one shared causal layer, then W_k) or "none"
    steps: int = 12  # K
    heads: int = 4  # transformer only


class PredictionHeads(nn.Module):
    """(batch, time, context_dim) -> (batch, time, steps, target_dim); row [:, t, k-1] predicts frame t+k."""

    def __init__(self, context_dim: int, target_dim: int, steps: int, kind: str = "linear", heads: int = 4):
        super().__init__()
        if kind not in ("linear", "transformer"):
            raise ValueError(f"unknown predictor kind {kind!r}; choose one of {PREDICTOR_KINDS}")
        if steps < 1:
            raise ValueError(f"predictor steps K must be >= 1; got {steps}")
        self.steps = steps
        self.body = CausalTransformerLayer(context_dim, heads) if kind == "transformer" else None
        # One matmul produces all K predictions: W_1..W_K stacked along the output dimension.
        self.project = nn.Linear(context_dim, steps * target_dim)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        h = c if self.body is None else self.body(c)[0]
        return rearrange(self.project(h), "b t (k d) -> b t k d", k=self.steps)


def mlp(dims: tuple[int, ...] | list[int]) -> nn.Sequential:
    """Projection / predictor MLP: (Linear -> BatchNorm -> ReLU) between every pair of dims, a plain Linear last
    (SimCLR, MoCo v2, BYOL: Linear-BN-ReLU-Linear)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=last))
        if not last:
            layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)
