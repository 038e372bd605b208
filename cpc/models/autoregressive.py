"""Autoregressive models g_ar: frames z (batch, time, dim) -> causal context c (batch, time, dim).

Every g_ar has one signature, ``forward(x, state=None) -> (out, state)``: calling it on consecutive chunks of a
sequence, passing the returned state along, gives the same output as one call on the whole sequence. The causal
Transformer uses ALiBi distance biases instead of a position table, so it runs on any length, and attends over a
bounded window so its streaming state (cached keys and values) stays bounded for hour-long inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

AR_KINDS = ("gru", "lstm", "transformer")


@dataclass
class AutoregressiveConfig:
    kind: str = "gru"  # "gru", "lstm" or "transformer"
    dim: int = 256
    layers: int = 1
    heads: int = 4  # transformer only
    window: int | None = 128  # transformer only: frames each position attends to (itself included)


class RecurrentAR(nn.Module):
    """GRU or LSTM over (batch, time, input_dim); state is the RNN's hidden state. The recurrence always runs in
    float32, whatever autocast asks: cuDNN's autocast casts RNNs to fp16 even under bf16, and oneDNN has no bf16
    LSTM on CPUs without native bf16 (AVX2), where autocast made it fail."""

    def __init__(self, kind: str, input_dim: int, dim: int, layers: int):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn = rnn(input_dim, dim, num_layers=layers, batch_first=True)

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        with torch.autocast(x.device.type, enabled=False):
            return self.rnn(x.float(), state)


def alibi_slopes(heads: int) -> torch.Tensor:
    """The geometric per-head slopes of ALiBi (Press et al. 2022): 2^(-8 i / heads), i = 1..heads."""
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / heads) for i in range(heads)])


def causal_alibi_bias(queries: int, keys: int, slopes: torch.Tensor, window: int | None) -> torch.Tensor:
    """Additive attention bias (heads, queries, keys); the queries are the last `queries` of the `keys` positions."""
    query_pos = torch.arange(keys - queries, keys, device=slopes.device)
    key_pos = torch.arange(keys, device=slopes.device)
    distance = query_pos[:, None] - key_pos[None, :]
    allowed = distance >= 0
    if window is not None:
        allowed &= distance < window
    bias = -slopes[:, None, None] * distance.to(slopes.dtype)
    return bias.masked_fill(~allowed, float("-inf"))


class CausalTransformerLayer(nn.Module):
    """Pre-norm Transformer layer with causal ALiBi attention; state = cached (keys, values) of past frames."""

    def __init__(self, dim: int, heads: int, window: int | None = None, ff_mult: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer dim {dim} must be divisible by its number of heads {heads}")
        self.heads, self.window = heads, window
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))
        self.register_buffer("slopes", alibi_slopes(heads), persistent=False)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        q, k, v = rearrange(self.qkv(self.attn_norm(x)), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        if state is not None:
            k, v = torch.cat([state[0], k], dim=2), torch.cat([state[1], v], dim=2)
        bias = causal_alibi_bias(q.shape[2], k.shape[2], self.slopes, self.window).to(q.dtype)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.attn_out(rearrange(attended, "b h t d -> b t (h d)"))
        x = x + self.ff(self.ff_norm(x))
        if self.window is not None:  # future frames can attend to at most the last window-1 of these
            start = max(0, k.shape[2] - (self.window - 1))
            k, v = k[:, :, start:], v[:, :, start:]
        return x, (k, v)


class CausalTransformerAR(nn.Module):
    """A stack of causal Transformer layers over (batch, time, input_dim); state = one cache per layer."""

    def __init__(self, input_dim: int, dim: int, layers: int, heads: int, window: int | None):
        super().__init__()
        self.inp = nn.Linear(input_dim, dim) if input_dim != dim else nn.Identity()
        self.layers = nn.ModuleList(CausalTransformerLayer(dim, heads, window) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        state = state or [None] * len(self.layers)
        h, new_state = self.inp(x), []
        for layer, layer_state in zip(self.layers, state):
            h, layer_state = layer(h, layer_state)
            new_state.append(layer_state)
        return self.norm(h), new_state


def build_autoregressive(config: AutoregressiveConfig, input_dim: int) -> nn.Module:
    """g_ar from its config; output dim is config.dim."""
    if config.kind in ("gru", "lstm"):
        return RecurrentAR(config.kind, input_dim, config.dim, config.layers)
    if config.kind == "transformer":
        if config.window is not None and config.window < 1:
            raise ValueError(f"transformer window must be >= 1 frame or None; got {config.window}")
        return CausalTransformerAR(input_dim, config.dim, config.layers, config.heads, config.window)
    raise ValueError(f"unknown autoregressive kind {config.kind!r}; choose one of {AR_KINDS}")
