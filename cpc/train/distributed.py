"""torchrun / DDP plumbing: the process group from the environment torchrun sets (NCCL on GPUs, gloo on CPU) and
the few collectives the trainer needs beyond DDP's gradient all-reduce."""

from __future__ import annotations

import os
import warnings
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from cpc.devices import pick_device

_owned = False  # setup() made the process group, so teardown() ends it


def setup(device: str = "auto", timeout_minutes: float = 30.0) -> tuple[torch.device, int, int]:
    """(device, rank, world_size); joins the process group when launched by torchrun with WORLD_SIZE > 1. On CUDA
    each process takes GPU `LOCAL_RANK % device_count()`. `timeout_minutes` bounds how long a collective waits
    for the slowest rank (a checkpoint write on rank 0 must fit in it)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    global _owned
    if world > 1 and not dist.is_initialized():
        hazard = stale_store_hazard()
        if hazard and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0" and os.environ.get("RANK") == "0":
            warnings.warn(hazard, stacklevel=2)
        try:
            dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo",
                                    timeout=timedelta(minutes=timeout_minutes))
        except RuntimeError as error:
            if hazard and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
                raise RuntimeError(f"{error}\nthe likely cause on a restart: {hazard}") from error
            raise
        _owned = True
    if dist.is_initialized():  # possibly made by the caller, at any world size
        return chosen, dist.get_rank(), dist.get_world_size()
    return chosen, 0, world


def stale_store_hazard() -> str | None:
    """Why a restart may fail to connect, or None. torchrun with --max-restarts shares its rendezvous store with
    the workers by default, without a per-restart prefix, so a restarted group can read the addresses the group
    before it published and fail with "Connection refused" (pytorch/pytorch#135712; seen here under load)."""
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if not shared or int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) == 0:
        return None
    return ("torchrun --max-restarts shares its rendezvous store with the workers, and a restarted group can read "
            "the addresses of the group before it and fail to connect: launch torchrun with "
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment")


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over ranks, in place (no copy to the host)."""
    if active():
        dist.all_reduce(values)
    return values


def max_over_ranks(values: torch.Tensor) -> torch.Tensor:
    if active():
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (e.g. the checkpoint rank 0 chose: other nodes may not have the file)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    boxes = [None] * dist.get_world_size()
    dist.all_gather_object(boxes, obj)
    return boxes


def teardown() -> None:
    """Leaves the process group setup() joined; one the caller made stays theirs."""
    global _owned
    if active() and _owned:
        dist.destroy_process_group()
    _owned = False
