"""One checkpoint layout for everything, written atomically (temporary file, fsync, rename), newest k kept."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

PATTERN = re.compile(r"step-(\d+)\.pt$")


def rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(state: dict[str, Any], folder: str | Path, step: int, keep: int) -> Path:
    """folder/step-NNNNNNNN.pt, never visible half-written: a crash leaves the previous checkpoints intact."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}.pt"
    temporary = folder / f".{final.name}.tmp-{os.getpid()}"
    with open(temporary, "wb") as stream:
        torch.save(state, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, final)
    for old in checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return final


def checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints in step order (temporary files are never matched)."""
    folder = Path(folder)
    found = [p for p in folder.glob("step-*.pt") if PATTERN.search(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(PATTERN.search(p.name).group(1)))


def latest(folder: str | Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        newest = latest(path)
        if newest is None:
            raise FileNotFoundError(f"no checkpoint (step-*.pt) in {path}")
        path = newest
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=False)
