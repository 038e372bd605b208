"""Which device a command computes on: "auto" (this process's GPU when CUDA is present, else the CPU), "cpu" or
"cuda"."""

from __future__ import annotations

import os

import torch

from cpc.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: "str | torch.device | None" = "auto") -> torch.device:
    """"auto": this process's GPU (LOCAL_RANK % device_count()) when CUDA is present, else the CPU."""
    if isinstance(name, torch.device):
        return name
    name = name or "auto"
    if name not in DEVICES:  # a device string such as "cuda:1"
        try:
            return torch.device(name)
        except RuntimeError:
            raise UserError(f"unknown device {name!r}; choose one of {DEVICES} or a torch device such as cuda:1")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for but no CUDA device is visible; use 'auto' or 'cpu'")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
