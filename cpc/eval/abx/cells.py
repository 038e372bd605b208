"""ABX cells: kept items grouped by (context, speaker, phone); a within-speaker cell is (A, B) two phones of one
(context, speaker) with X another A item, an across-speaker cell takes X of A's (context, phone) from up to
`max_x` other speakers. Where a group holds more items than a cell uses, a uniform subset is drawn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Groups:
    """Kept items grouped by (context, speaker, phone); group g holds items[offset[g] : offset[g] + size[g]]."""

    items: np.ndarray  # kept-item numbers sorted by group, item-file order inside a group
    offset: np.ndarray
    size: np.ndarray
    context: np.ndarray  # (groups,) codes; all 0 in "any" context mode
    speaker: np.ndarray
    phone: np.ndarray


def group_items(context: np.ndarray, speaker: np.ndarray, phone: np.ndarray) -> Groups:
    """Items (given by their context, speaker and phone codes) grouped by those three, item order kept inside."""
    order = np.lexsort((np.arange(len(phone)), phone, speaker, context))
    key = np.stack([context[order], speaker[order], phone[order]])
    new = np.concatenate([[True], np.any(key[:, 1:] != key[:, :-1], axis=0)])
    offset = np.flatnonzero(new)
    size = np.diff(np.concatenate([offset, [len(order)]]))
    return Groups(order, offset, size, *key[:, offset])


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted rows of `keys` (rows, cols): each row's run start and run length."""
    new = np.concatenate([[True], np.any(keys[1:] != keys[:-1], axis=1)])
    start = np.flatnonzero(new)
    length = np.diff(np.concatenate([start, [len(keys)]]))
    run = np.cumsum(new) - 1
    return start[run], length[run]


def _others(count: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each owner o: positions 0..count[o]-1 except skip[o] -> (owner of each, position)."""
    owner = np.repeat(np.arange(len(count)), np.maximum(count - 1, 0))
    first = np.cumsum(np.maximum(count - 1, 0)) - np.maximum(count - 1, 0)
    q = np.arange(len(owner)) - first[owner]
    return owner, q + (q >= skip[owner])


def within_cells(g: Groups) -> dict[str, np.ndarray]:
    """A, B two phone groups of one (context, speaker), A with >= 2 items (X is another A item)."""
    block_start, block_size = _runs(np.stack([g.context, g.speaker], 1))
    a = np.flatnonzero((block_size >= 2) & (g.size >= 2))
    owner, pos = _others(block_size[a], a - block_start[a])
    ga = a[owner]
    gb = block_start[ga] + pos
    return {"a": ga, "b": gb, "x": ga}


def across_cells(g: Groups, max_x: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A, B as within; X the same (context, phone A) from up to `max_x` other speakers, drawn once per A."""
    block_start, block_size = _runs(np.stack([g.context, g.speaker], 1))
    by_cp = np.lexsort((g.speaker, g.phone, g.context))
    cp_start, cp_size = _runs(np.stack([g.context[by_cp], g.phone[by_cp]], 1))
    rank = np.empty(len(by_cp), dtype=np.int64)
    rank[by_cp] = np.arange(len(by_cp))
    a = np.flatnonzero((block_size >= 2) & (cp_size[rank] >= 2))
    others = cp_size[rank[a]] - 1
    take = np.minimum(others, max_x)
    # X speakers: a uniform subset of `take` among the `others` groups of A's (context, phone)
    keys = rng.random((len(a), int(others.max()) if len(a) else 0))
    keys[np.arange(keys.shape[1])[None, :] >= others[:, None]] = np.inf
    chosen = np.sort(np.argsort(keys, axis=1, kind="stable")[:, :max_x], axis=1)
    own = rank[a] - cp_start[rank[a]]
    slot_owner = np.repeat(np.arange(len(a)), take)
    slot = chosen[slot_owner, np.arange(len(slot_owner)) - (np.cumsum(take) - take)[slot_owner]]
    gx = by_cp[cp_start[rank[a]][slot_owner] + slot + (slot >= own[slot_owner])]
    ga_slot = a[slot_owner]
    owner, pos = _others(block_size[ga_slot], ga_slot - block_start[ga_slot])
    ga = ga_slot[owner]
    return {"a": ga, "b": block_start[ga] + pos, "x": gx[owner]}


def draw_items(g: Groups, groups: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Items of each group, a uniform subset of `limit` where larger -> (cells, width) item numbers, -1 pad."""
    size = g.size[groups]
    width = int(np.minimum(size, limit).max())
    pos = np.broadcast_to(np.arange(width), (len(groups), width)).copy()
    big = np.flatnonzero(size > limit)
    if len(big):
        keys = rng.random((len(big), int(size[big].max())))
        keys[np.arange(keys.shape[1])[None, :] >= size[big][:, None]] = np.inf
        pos[big] = np.sort(np.argpartition(keys, limit - 1, axis=1)[:, :limit], axis=1)
    out = g.items[np.minimum(g.offset[groups][:, None] + pos, len(g.items) - 1)]
    out[pos >= size[:, None]] = -1
    return out

