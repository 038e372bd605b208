"""MoCo v2 (Chen et al. 2020): queries from the online encoder, keys from its momentum copy, a queue of past keys
as negatives. The queue is a persistent buffer: checkpoints carry it, so a resumed run keeps its negatives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cpc.losses.collectives import gather_no_grad, world
from cpc.losses.moco import moco_infonce
from cpc.losses.ntxent import unit
from cpc.methods.base import momentum_copy
from cpc.methods.image import ImageMethod, ImageMethodConfig
from cpc.models.heads import mlp


@dataclass
class MoCoConfig(ImageMethodConfig):
    queue: int = 4096
    temperature: float = 0.2
    momentum: float = 0.99
    symmetric: bool = True  # both views as queries (twice the signal per batch)


class MoCo(ImageMethod):
    def __init__(self, config: MoCoConfig = MoCoConfig()):
        super().__init__(config)
        self.online = nn.Sequential(self.backbone, mlp((self.backbone.dim, config.proj_hidden, config.proj_dim)))
        self.target = momentum_copy(self.online)
        self.register_buffer("queue", unit(torch.randn(config.queue, config.proj_dim)))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    def losses(self, x1: torch.Tensor, x2: torch.Tensor, valid: torch.Tensor | None = None):
        q1, q2 = self.online(torch.cat([x1, x2])).chunk(2)
        with torch.no_grad():
            k1, k2 = shuffled_bn_keys(self.target, torch.cat([x1, x2])).chunk(2)
        queue = self.queue.clone()  # enqueue() below rewrites the buffer that backward needs
        loss, accuracy = moco_infonce(q1, k2, queue, self.config.temperature, valid)
        keys = [k2]
        if self.config.symmetric:
            loss2, accuracy2 = moco_infonce(q2, k1, queue, self.config.temperature, valid)
            loss, accuracy = (loss + loss2) / 2, (accuracy + accuracy2) / 2
            keys.append(k1)
        if self.training:
            self.enqueue(torch.cat(keys))
        return loss, {"infonce": loss.detach(), "accuracy": accuracy}

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Every rank's keys (so all queues stay equal) replace the oldest entries, wrapping around."""
        keys = unit(gather_no_grad(keys))[: len(self.queue)]
        rows = (self.queue_pointer + torch.arange(len(keys), device=keys.device)) % len(self.queue)
        self.queue[rows] = keys.to(self.queue.dtype)
        self.queue_pointer.copy_((self.queue_pointer + len(keys)) % len(self.queue))

    def momentum_pairs(self):
        return [(self.online, self.target)]

    def momentum(self, step: int) -> float:
        return self.config.momentum


def shuffled_bn_keys(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """encoder(x) for the keys, with shuffled BatchNorm under DDP (He et al. 2020): each rank encodes a random
    slice of the global batch, so a query and its key never share per-rank BatchNorm statistics (that would let
    the model find its key through them). One process, or SyncBatchNorm: plain encoder(x)."""
    rank, size = world()
    synced = any(isinstance(m, nn.SyncBatchNorm) for m in encoder.modules())
    if size == 1 or synced or not encoder.training:
        return encoder(x)
    everything = gather_no_grad(x)
    order = torch.randperm(len(everything), device=x.device)
    torch.distributed.broadcast(order, src=0)  # the same permutation on every rank
    mine = order.view(size, -1)[rank]
    keys = gather_no_grad(encoder(everything[mine]))  # keys[i] belongs to row order[i]
    restored = torch.empty_like(keys)
    restored[order] = keys
    return restored.view(size, -1, *keys.shape[1:])[rank]
