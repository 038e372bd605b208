"""The one checkpoint layout: written atomically (temporary file, fsync, rename), read safely (`weights_only`),
and self-describing, so `load()` rebuilds the trained model from the file alone.

A checkpoint is a dict of tensors and plain containers only:
    {"model": method state dict, "model_config": {"class", "config", "prefix"}, "optimiser", "scheduler",
     "scaler", "step", "epoch", "data_position": {"batch", "segment"}, "rng": [per-rank states], "config": run
     config, "version"}
`model_config` names the inference model (CPCModel, or an image method's backbone), its dataclass config and the
prefix of its weights inside "model"; it is all `load()` needs, with no training config and no side effects.
`data_position` is where the training stream resumes (cpc.data.stages.StreamPosition): the index of the next
batch and the batches per randomness segment; `data_position()` reads it, also from older checkpoints.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import socket
import zipfile
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cpc.config import from_dict, to_dict
from cpc.errors import UserError
from cpc.version import __version__
from cpc.models.cpc import CPCModel, CPCModelConfig
from cpc.models.encoders import ImageEncoder, ImageEncoderConfig

PATTERN = re.compile(r"step-(\d+)\.pt$")
DATA_POSITION = "data_position"
LEGACY_DATA_SEGMENT = "data_segment"  # before data_position: the segment alone (the next batch: step x accumulate)
# The classes a checkpoint can name as its model: name -> (config class, module class).
MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "CPCModel": (CPCModelConfig, CPCModel),
    "ImageEncoder": (ImageEncoderConfig, ImageEncoder),
}


def data_position(state: dict[str, Any], batch: int, segment: int) -> dict[str, int]:
    """The training stream's position `state` records, {"batch", "segment"}; `batch` and `segment` stand in for
    what an older checkpoint lacks (one written before `data_position` holds `data_segment` alone)."""
    if DATA_POSITION in state:
        return {"batch": int(state[DATA_POSITION]["batch"]), "segment": int(state[DATA_POSITION]["segment"])}
    return {"batch": batch, "segment": int(state.get(LEGACY_DATA_SEGMENT, segment))}


class CheckpointError(UserError, ValueError):
    """A file that is missing, unreadable, unsafe or not a cpc checkpoint; the message names it and the way out."""


def model_record(model: nn.Module, prefix: str) -> dict[str, Any]:
    """What `load()` needs to rebuild `model`: its class name, its config as plain types, where its weights are."""
    name = type(model).__name__
    if name not in MODELS or not dataclasses.is_dataclass(getattr(model, "config", None)):
        raise TypeError(f"{name} is not a model a checkpoint can describe; known: {sorted(MODELS)}")
    return {"class": name, "config": to_dict(model.config), "prefix": prefix}


def build_model(record: dict[str, Any], seed: int = 0) -> nn.Module:
    """A fresh model from a `model_record`, initialised from `seed` without touching the global RNG."""
    config_class, model_class = MODELS[record["class"]]
    config = from_dict(config_class, record["config"], where="model_config")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


def rng_states(device: torch.device | None = None) -> dict[str, Any]:
    """This process's random states as tensors and plain containers (safe to read with weights_only);
    on CUDA, the state of this rank's own device."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": position, "has_gauss": has_gauss,
                  "gauss": gauss},
        "python": list(random.getstate()[1]),
    }
    if device is not None and device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng(states: dict[str, Any], device: torch.device | None = None) -> None:
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"],
                         numpy["gauss"]))
    random.setstate((3, tuple(states["python"]), None))
    if "cuda" in states and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


def save(state: dict[str, Any], folder: str | Path, step: int) -> Path:
    """folder/step-NNNNNNNN.pt, never visible half-written: serialised in memory, written to a temporary file,
    fsynced and renamed, so a crash or a full disk leaves the previous checkpoints intact and no partial file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}.pt"
    temporary = folder / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        with open(temporary, "wb") as stream:
            stream.write(buffer.getbuffer())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, final)
    except BaseException as error:  # a full disk, or an interrupt mid-write: no partial file stays behind
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise CheckpointError(f"no space left on {mount_point(folder)} writing {final}: free some space (older "
                                  "checkpoints were kept) and resume with --resume") from None
        raise
    return final


def mount_point(path: Path) -> Path:
    """The mount point (device) `path` lives on."""
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def prune(folder: str | Path, own: list[Path], keep: int) -> list[Path]:
    """Delete all but the newest `keep` of `own` (the checkpoints this run wrote or resumed from); any other file
    in the folder is never touched. Returns what is left of `own`."""
    own = sorted(set(own), key=lambda p: int(PATTERN.search(p.name).group(1)))
    if keep <= 0 or len(own) <= keep:
        return own
    for old in own[:-keep]:
        old.unlink(missing_ok=True)
    return own[-keep:]


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Temporary files of interrupted writes by this host whose writing process is gone (a live writer's, and
    other hosts' on a shared disk, are left alone)."""
    removed = []
    for path in Path(folder).glob(f".step-*.pt.tmp-{socket.gethostname()}-*") if Path(folder).is_dir() else []:
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def newest_readable(folder: str | Path) -> tuple[Path | None, dict[str, Any] | None, list[str]]:
    """(path, state) of the newest checkpoint in `folder` that reads, and why each newer one was skipped."""
    skipped = []
    for path in reversed(checkpoints(folder)):
        try:
            return path, read(path), skipped
        except CheckpointError as error:
            skipped.append(str(error))
    return None, None, skipped


def checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints in step order (temporary files are never matched)."""
    folder = Path(folder)
    found = [p for p in folder.glob("step-*.pt") if PATTERN.search(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(PATTERN.search(p.name).group(1)))


def latest(folder: str | Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's newest checkpoint."""
    path = Path(path)
    if path.is_dir():
        newest = latest(path)
        if newest is None:
            raise CheckpointError(f"no checkpoint (step-*.pt) in {path}")
        return newest
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def read(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, read with `weights_only=True`: a file whose unpickling would run code is refused."""
    path = resolve(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or others by what is wrong
        text = str(error)
        reason = text.strip().splitlines()[0][:120] if text.strip() else type(error).__name__
        with open(path, "rb") as stream:
            zipped = stream.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        if zipped and not zipfile.is_zipfile(path):  # begun as one, but its end (the zip directory) is missing
            reason = f"truncated: {path.stat().st_size} bytes, the end is missing; an interrupted copy or write?"
        elif "Weights only load failed" in text or not zipped:  # a WAV, a text file, raw pickle bytes
            reason = "not a file torch.save wrote"
        if "Unsupported global" in text or "GLOBAL" in text:  # a pickled reference to some callable
            raise CheckpointError(f"{path} holds objects other than tensors and plain containers; refused, because "
                                  "loading it could run code. If you wrote it yourself with an older cpc, convert "
                                  "it: python tools/convert_checkpoint.py " + str(path)) from None
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a cpc checkpoint (no model weights)")
    return state


def load(path: str | Path, weights: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """A checkpoint file (or a run folder: its newest checkpoint) -> the trained model (a CPCModel, or an image
    method's backbone) in eval mode on `device`; weights=False gives the same architecture freshly initialised
    (seed 0), for random-init baselines. Reads only the model's own config; the global RNG is left alone."""
    path = resolve(path)
    state = read(path)
    record = state.get("model_config")
    if not record:
        raise CheckpointError(f"{path} carries no model config (written by cpc before 0.2?): convert it with "
                              f"python tools/convert_checkpoint.py {path}")
    if record.get("class") not in MODELS:
        raise CheckpointError(f"{path}: unknown model class {record.get('class')!r}; known: {sorted(MODELS)}")
    model = build_model(record)
    if weights:
        prefix = record["prefix"]
        own = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
        try:
            missing, unexpected = model.load_state_dict(own, strict=False)
        except RuntimeError as error:  # a tensor of another shape
            raise CheckpointError(f"{path}: weights do not fit its model config ({str(error).splitlines()[-1].strip()})") from None
        if missing or unexpected:
            raise CheckpointError(f"{path}: weights do not fit its model config (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
    return model.to(device).eval()
