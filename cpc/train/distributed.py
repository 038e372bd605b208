"""torchrun / DDP plumbing: process group from the environment torchrun sets, NCCL on GPUs, gloo on CPU."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup() -> tuple[torch.device, int, int]:
    """(device, rank, world_size); joins the process group when launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return device, rank, world


def all_true(flag: bool, device: torch.device) -> bool:
    """True only if `flag` is true on every rank (e.g. "this step's loss is finite")."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def mean_over_ranks(values: dict[str, float], weight: float, device: torch.device) -> dict[str, float]:
    """Weighted mean of per-rank averages (weight = how many batches each rank averaged)."""
    if not dist.is_initialized():
        return values
    keys = sorted(values)
    packed = torch.tensor([values[k] * weight for k in keys] + [weight], device=device, dtype=torch.float64)
    dist.all_reduce(packed)
    return {k: (packed[i] / packed[-1]).item() for i, k in enumerate(keys)}


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
