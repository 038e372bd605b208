"""Autograd-aware collectives for losses that need the whole global batch (negatives from every rank, batch
statistics and cross-correlations over every rank). Gradients flow back to the rank that produced each row, so
DDP's gradient average over ranks equals the gradient of the loss on one process holding the whole batch. A raw
`dist.all_gather` / `dist.all_reduce` would cut the graph (other ranks' rows become constants) or leave gradients
1/world too small. Outside a process group every function is the identity."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's x concatenated along dim 0 in rank order, with gradients back to each rank's rows."""
    if world()[1] == 1:
        return x
    return torch.cat(dist_nn.all_gather(x), dim=0)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's x concatenated along dim 0, as constants (e.g. keys entering a MoCo queue)."""
    if world()[1] == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world()[1])]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of x over ranks, with the gradient of that sum."""
    if world()[1] == 1:
        return x
    return dist_nn.all_reduce(x, op=dist.ReduceOp.SUM)
