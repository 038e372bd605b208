"""Each kept item's frames, packed in one tensor: an item's [onset, offset) in seconds becomes a frame range as the
reference selects it, float frames are L2-normalised (zero frames by the reference's singularity rule), unit ids
stay ids. Reads a feature source (a mapping or callable, cpc.eval.sources) file by file in item-file order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from cpc.eval.abx import ABXError
from cpc.eval.abx.items import ItemTable
from cpc.eval.sources import MissingKeys


def normalize_with_singularity(x: torch.Tensor) -> torch.Tensor:
    """(frames, dim) -> (frames, dim + 1): rows L2-normalised plus a border coordinate 1e-12; an all-zero row
    becomes the constant 1/sqrt(dim) with border -2e12, so it sits at the largest cosine distance from any other
    frame and at distance 0 from another zero frame (the reference's rule)."""
    frames, dim = x.shape
    norm = (x**2).sum(dim=1, keepdim=True)
    zero = (norm == 0).view(frames)
    x = x / torch.sqrt(torch.where(norm == 0, torch.ones_like(norm), norm))
    x[zero] = 1 / math.sqrt(dim)
    border = torch.full((frames, 1), 1e-12, dtype=x.dtype, device=x.device)
    border[zero] = -2 * 1e12
    return torch.cat([x, border], dim=1)


def item_frames(onset: np.ndarray, offset: np.ndarray, frames: int, feature_size: float = 0.01
                ) -> tuple[np.ndarray, np.ndarray]:
    """Frame range [start, end) of items: start = max(0, ceil(onset/step - 0.5)), end = min(frames,
    floor(offset/step - 0.5)), computed as the reference does (times multiplied by 1/step)."""
    rate = 1 / feature_size
    start = np.maximum(0, np.ceil(rate * np.asarray(onset, dtype=np.float64) - 0.5)).astype(np.int64)
    end = np.minimum(frames, np.floor(rate * np.asarray(offset, dtype=np.float64) - 0.5)).astype(np.int64)
    return start, end


@dataclass
class ItemFrames:
    """Every kept item's frames: frames[start[i] : start[i] + length[i]] (float rows, or unit ids when `ids`)."""

    data: torch.Tensor  # (total frames, dim + 1) float32, or (total frames,) int64 unit ids
    start: np.ndarray  # (kept items,)
    length: np.ndarray  # (kept items,)
    keep: np.ndarray  # (kept items,) row numbers in the item table
    ids: bool


def _as_tensor(array, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(array).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ABXError(f"features of {name!r} are not an array ({error})") from None
    if tensor.ndim == 1 and not tensor.is_floating_point() and not tensor.is_complex():
        return tensor.long()
    if tensor.ndim != 2 or tensor.shape[1] == 0:
        raise ABXError(f"features of {name!r} have shape {tuple(tensor.shape)}; expected (frames, dim) "
                       "or (frames,) integer unit ids")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor


def _missing(items: ItemTable, files: list[str], missing: list[str], features) -> MissingKeys:
    where = f" in {features.source}" if getattr(features, "source", None) else ""
    return MissingKeys(f"{len(missing)} of the {len(files)} files of {items.source} have no features{where}, "
                       f"first: {', '.join(missing[:5])} (features are looked up by the item file's #file "
                       "column: extract those files, or use the item file of this set)")


def load_frames(items: ItemTable, features, feature_size: float, progress: bool) -> ItemFrames:
    """The frames of every item of `items` that has at least one, from `features` (file -> array, or a callable);
    a file missing from the source, or arrays of differing dims, is one clear error."""
    from cpc.progress import progress_bar

    order = np.argsort(items.files, kind="stable")
    names, first = np.unique(items.files[order], return_index=True)
    rows_of = dict(zip(names.tolist(), np.split(order, first[1:])))
    files = sorted(rows_of, key=lambda f: rows_of[f][0])  # item-file order
    getter = features.__getitem__ if isinstance(features, Mapping) else features
    if isinstance(features, Mapping):
        missing = [f for f in files if f not in features]
    else:
        missing = []
    if missing:
        raise _missing(items, files, missing, features)
    chunks, starts, lengths, keeps = [], [], [], []
    total, kind, dim = 0, None, None
    for name in progress_bar(files, desc="ABX features", unit="file", disable=not progress):
        try:
            tensor = _as_tensor(getter(name), name)
        except (KeyError, FileNotFoundError):
            missing.append(name)
            continue
        ids = tensor.ndim == 1
        if kind is None:
            kind, dim = ids, (None if ids else tensor.shape[1])
        elif kind != ids or (not ids and tensor.shape[1] != dim):
            shape = "unit ids" if ids else f"dim {tensor.shape[1]}"
            raise ABXError(f"features of {name!r} ({shape}) differ from the earlier files'"
                           f" ({'unit ids' if kind else f'dim {dim}'})")
        if not ids:
            tensor = normalize_with_singularity(tensor if tensor.dtype == torch.float64 else tensor.float()).float()
        rows = rows_of[name]
        start, end = item_frames(items.onset[rows], items.offset[rows], len(tensor), feature_size)
        ok = (start < len(tensor)) & (end > start)
        rows, start, end = rows[ok], start[ok], end[ok]
        if len(rows):
            index = np.concatenate([np.arange(s, e) for s, e in zip(start.tolist(), end.tolist())])
            chunks.append(tensor[torch.from_numpy(index)])
            starts.append(total + np.cumsum(end - start) - (end - start))
            lengths.append(end - start)
            keeps.append(rows)
            total += len(index)
    if missing:
        raise _missing(items, files, missing, features)
    if not chunks:
        raise ABXError(f"no item of {items.source} has frames in its features (feature_size {feature_size} s?)")
    keep = np.concatenate(keeps)
    by_row = np.argsort(keep, kind="stable")  # items in item-file order
    return ItemFrames(torch.cat(chunks), np.concatenate(starts)[by_row], np.concatenate(lengths)[by_row],
                      keep[by_row], bool(kind))

