"""`abx_errors`: the ABX error of a feature source on an item file, for each speaker and context mode.

How the error is defined (same as the reference): items are (file, onset, offset, phone, prev+next context,
speaker); frames are L2-normalised, frame distance is the angular distance acos(<a, b>)/pi (or euclidean / KL),
item distance is DTW cost divided by the backtracked path length. For a cell (A phone, B phone, X group) the score
is P(d(X, A) < d(X, B)) + 0.5 P(=); the error is 1 minus that, averaged over contexts, then speakers, then phone
pairs, in percent."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping

import numpy as np
import torch

from cpc.devices import pick_device
from cpc.eval.abx import ABXError
from cpc.eval.abx.cells import Groups, across_cells, draw_items, group_items, within_cells
from cpc.eval.abx.dtw import DISTANCES, pair_dtw, unit_distances
from cpc.eval.abx.frames import ItemFrames, load_frames
from cpc.eval.abx.items import ItemTable, read_items

SPEAKER_MODES = ("within", "across")
CONTEXT_MODES = ("within", "any")
PAIR_BUDGET = 1 << 21  # DTW pairs drawn per chunk of cells: fixes the random streams, so no device changes them


def score_chunk(frames: ItemFrames, g: Groups, cells: dict[str, np.ndarray], within: bool, limit: int,
                rng: np.random.Generator, distance: str, device, unit_distance) -> np.ndarray:
    """ABX error of each cell of a chunk (fractions)."""
    sb = draw_items(g, cells["b"], limit, rng)
    sa = draw_items(g, cells["a"], limit, rng)
    sx = sa if within else draw_items(g, cells["x"], limit, rng)
    cols = np.concatenate([sa, sb], axis=1)
    rows = np.broadcast_to(sx[:, :, None], (len(sx), sx.shape[1], cols.shape[1]))
    cols = np.broadcast_to(cols[:, None, :], rows.shape)
    valid = (rows >= 0) & (cols >= 0)
    if within:  # d(a_i, a_j) once per unordered pair, the earlier item down (as the reference's i < j)
        part = (slice(None), slice(None), slice(0, sa.shape[1]))
        valid[part] &= rows[part] != cols[part]
        rows, cols = rows.copy(), cols.copy()
        low, high = np.minimum(rows[part], cols[part]), np.maximum(rows[part], cols[part])
        rows[part], cols[part] = low, high
    count = len(frames.length)
    keys = rows[valid].astype(np.int64) * count + cols[valid]
    unique, inverse = np.unique(keys, return_inverse=True)
    values = pair_dtw(frames, unique // count, unique % count, distance, device, unit_distance)
    table = torch.full(rows.shape, math.nan, dtype=torch.float32, device=device)
    table[torch.from_numpy(valid).to(device)] = values[torch.from_numpy(inverse).to(device)]
    na, nb, nx = ((torch.from_numpy((s >= 0).sum(1)).to(device).double()) for s in (sa, sb, sx))
    triplets = na * (na - 1) * nb if within else nx * na * nb
    return cell_errors(table[:, :, : sa.shape[1]], table[:, :, sa.shape[1] :], triplets).cpu().numpy()


def cell_errors(d_xa: torch.Tensor, d_xb: torch.Tensor, triplets: torch.Tensor) -> torch.Tensor:
    """(cells, X, A) and (cells, X, B) item distances (NaN where absent, and on the diagonal when X is A) ->
    (cells,) errors 1 - [#(d(x,a) < d(x,b)) + 0.5 #(=)] / triplets."""
    cells, nx, na = d_xa.shape
    less = torch.zeros(cells, dtype=torch.float64, device=d_xa.device)
    equal = torch.zeros_like(less)
    rows = max(1, (1 << 24) // max(1, cells * na * d_xb.shape[2]))
    for x in range(0, nx, rows):
        xa, xb = d_xa[:, x : x + rows, :, None], d_xb[:, x : x + rows, None, :]
        less += (xa < xb).sum(dim=(1, 2, 3))
        equal += (xa == xb).sum(dim=(1, 2, 3))
    return 1 - (less + 0.5 * equal) / triplets


def _mean_by(values: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mean of `values` per distinct tuple of `columns` -> (means, the key columns of each mean)."""
    keys = np.stack(columns, axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    means = np.bincount(inverse, values) / np.bincount(inverse)
    return means, list(unique.T)


def _average(errors: np.ndarray, g: Groups, cells: dict[str, np.ndarray]) -> float:
    """Mean over the cells of one (A speaker, A phone, B phone) (within: its contexts; across: its (context,
    X speaker) pairs), then over A speakers, then over phone pairs: the reference's order."""
    if len(errors) == 0:
        return math.nan
    step, (_, p1, p2) = _mean_by(errors, g.speaker[cells["a"]], g.phone[cells["a"]], g.phone[cells["b"]])
    step, _ = _mean_by(step, p1, p2)
    return float(step.mean())


@contextlib.contextmanager
def _exact_matmul():
    """float32 matmuls in full precision while scoring (TF32 would move cosine distances by ~1e-3)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def _modes(value: str, choices: tuple[str, ...], what: str) -> list[str]:
    if value in ("both", "all"):
        return list(choices)
    if value not in choices:
        raise ABXError(f"{what} must be one of {', '.join(choices)} or both, not {value!r}")
    return [value]


def abx_errors(features: Mapping | Callable, items: ItemTable | str | os.PathLike, feature_size: float = 0.01,
               distance: str = "cosine", speaker_mode: str = "both", context_mode: str = "both",
               max_size_group: int = 10, max_x_across: int = 5, seed: int = 3459,
               device: str | torch.device | None = None, progress: bool = True) -> dict[str, float]:
    """ABX error rates in percent, keyed "<speaker mode>-<context mode>" ("within-within", "across-any", ...).
    `features`: file -> (frames, dim) array (or (frames,) unit ids), a mapping or a callable; `items`: an item
    file or read_items' table; `feature_size`: frame shift in seconds."""
    from cpc.progress import progress_bar

    distance = "euclidean" if distance == "euclidian" else distance
    if distance not in DISTANCES:
        raise ABXError(f"distance must be one of {', '.join(DISTANCES)}, not {distance!r}")
    speakers, contexts = _modes(speaker_mode, SPEAKER_MODES, "speaker_mode"), _modes(context_mode, CONTEXT_MODES,
                                                                                     "context_mode")
    if not feature_size > 0:
        raise ABXError(f"feature_size is the frame shift in seconds (e.g. 0.01), not {feature_size}")
    if max_size_group < 2 or max_x_across < 1:
        raise ABXError(f"max_size_group must be >= 2 and max_x_across >= 1 (got {max_size_group}, {max_x_across})")
    device = pick_device(device)  # None / "auto": CUDA when present
    table = items if isinstance(items, ItemTable) else read_items(items)
    frames = load_frames(table, features, feature_size, progress)
    frames.data = frames.data.to(device)
    unit_distance = unit_distances(distance) if frames.ids else None

    plans = []
    for context in contexts:
        ctx = table.context[frames.keep] if context == "within" else np.zeros(len(frames.keep), dtype=np.int64)
        g = group_items(ctx, table.speaker[frames.keep], table.phone[frames.keep])
        for speaker in speakers:
            stream = [seed, CONTEXT_MODES.index(context), SPEAKER_MODES.index(speaker)]
            rng = np.random.default_rng(stream + [0])
            cells = within_cells(g) if speaker == "within" else across_cells(g, max_x_across, rng)
            plans.append((f"{speaker}-{context}", g, cells, speaker == "within", stream))
    scores: dict[str, float] = {}
    total = sum(len(p[2]["a"]) for p in plans)
    bar = progress_bar(total=total, desc="ABX", unit="cell", disable=not progress)
    with torch.no_grad(), _exact_matmul(), bar:
        for name, g, cells, within, stream in plans:
            bar.set_description(f"ABX {name}")
            width = int(min(max_size_group, g.size.max()))
            per = max(1, PAIR_BUDGET // (2 * width * width))
            errors = []
            for number, lo in enumerate(range(0, len(cells["a"]), per)):
                chunk = {k: v[lo : lo + per] for k, v in cells.items()}
                rng = np.random.default_rng(stream + [number + 1])
                errors.append(score_chunk(frames, g, chunk, within, max_size_group, rng, distance, device,
                                          unit_distance))
                bar.update(len(chunk["a"]))
            errors = np.concatenate(errors) if errors else np.zeros(0)
            scores[name] = 100 * _average(errors, g, cells)
    return scores
