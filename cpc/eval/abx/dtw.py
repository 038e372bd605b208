"""Frame distances (angular, euclidean, KL) and DTW run on many item pairs at once: one anti-diagonal per step for
all pairs, pairs batched by length class. Item distance = DTW cost / backtracked path length, as the reference's
Cython DTW computes it, to the bit on float32 cosine distances."""

from __future__ import annotations

import math

import numpy as np
import torch

from cpc.eval.abx.frames import ItemFrames, normalize_with_singularity

DISTANCES = ("cosine", "euclidean", "kl", "kl_symmetric")


def frame_distances(x: torch.Tensor, y: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """(pairs, n, dim) x (pairs, m, dim) normalised frames -> (pairs, n, m) frame distances: cosine =
    acos(<x, y>)/pi, euclidean, kl = sum x log((x + 1e-6)/(y + 1e-6)), kl_symmetric = its mean both ways."""
    if distance == "cosine":
        return torch.bmm(x, y.transpose(1, 2)).clamp_(-1, 1).acos_() / math.pi
    if distance == "euclidean":
        return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    if distance in ("kl", "kl_symmetric"):
        eps = 1e-6
        lx, ly = torch.log(x + eps), torch.log(y + eps)
        kl = (x * lx).sum(-1)[:, :, None] - torch.bmm(x, ly.transpose(1, 2))
        if distance == "kl":
            return kl
        back = (y * ly).sum(-1)[:, None, :] - torch.bmm(lx, y.transpose(1, 2))
        return 0.5 * kl + 0.5 * back
    raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, not {distance!r}")


def unit_distances(distance: str) -> tuple[float, float]:
    """The frame distance of equal and of different one-hot frames (as the float path computes it)."""
    onehot = normalize_with_singularity(torch.eye(2)).view(1, 2, 3)
    d = frame_distances(onehot, onehot, distance)[0]
    return d[0, 0].item(), d[0, 1].item()


class Workspace:
    """Scratch buffers reused from one DTW batch to the next (fresh large tensors cost page faults)."""

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        need = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < need or buffer.dtype != dtype or buffer.device != device:
            buffer = self.buffers[name] = torch.empty(need, dtype=dtype, device=device)
        return buffer[:need].view(shape)


def dtw(dist: torch.Tensor, n: torch.Tensor | None = None, m: torch.Tensor | None = None,
        workspace: Workspace | None = None) -> torch.Tensor:
    """(pairs, N, M) frame distances -> (pairs,) DTW costs, cost[i, j] = d[i, j] + min(up, diagonal, left), divided
    by the length of the backtracked path (ties: diagonal, then left, then up), pair p using its first n[p] x m[p]
    frames. All pairs advance together, one anti-diagonal per step; pairs sorted by n + m drop out when done."""
    pairs, N, M = dist.shape
    device, dtype = dist.device, dist.dtype
    workspace = workspace or Workspace()
    if n is None:
        n = torch.full((pairs,), N, dtype=torch.long)
    if m is None:
        m = torch.full((pairs,), M, dtype=torch.long)
    n, m = torch.as_tensor(n, dtype=torch.long), torch.as_tensor(m, dtype=torch.long)
    by_cell = dist.permute(1, 2, 0).contiguous()
    diagonals = N + M + 1
    cost = workspace.get("cost", (diagonals, N + 1, pairs), dtype, device)
    steps = workspace.get("steps", (diagonals, N + 1, pairs), dtype, device)
    border = torch.arange(1, N + 1, device=device)  # only borders are read before being written
    cost[:, 0], cost[border, border], cost[0, 0] = math.inf, math.inf, 0
    steps[:, 0], steps[border, border] = 0, 0
    up_or_left, best, take_left, take_diag = (workspace.get(f"t{i}", (N, pairs), dtype, device) for i in range(4))
    ends = (n + m).cpu().numpy()
    sorted_ends = bool(np.all(ends[:-1] <= ends[1:]))
    first = np.searchsorted(ends, np.arange(diagonals), side="left") if sorted_ends else np.zeros(diagonals, int)
    for k in range(2, diagonals):
        p, lo, hi = int(first[k]), max(1, k - M), min(N, k - 1) + 1
        size = (hi - lo, pairs - p)
        d = by_cell.as_strided(size, ((M - 1) * pairs, 1), ((lo - 1) * M + k - lo - 1) * pairs + p)
        up, left, diag = cost[k - 1, lo - 1 : hi - 1, p:], cost[k - 1, lo:hi, p:], cost[k - 2, lo - 1 : hi - 1, p:]
        t_ul, t_best = up_or_left[: size[0], : size[1]], best[: size[0], : size[1]]
        t_left, t_diag = take_left[: size[0], : size[1]], take_diag[: size[0], : size[1]]
        torch.minimum(up, left, out=t_ul)
        torch.le(diag, t_ul, out=t_diag)  # ties: diagonal first, then left, then up (as 0./1. weights)
        torch.le(left, up, out=t_left)
        torch.add(d, torch.minimum(t_ul, diag, out=t_best), out=cost[k, lo:hi, p:])
        length = torch.lerp(steps[k - 1, lo - 1 : hi - 1, p:], steps[k - 1, lo:hi, p:], t_left, out=t_best)
        torch.lerp(length, steps[k - 2, lo - 1 : hi - 1, p:], t_diag, out=t_ul)
        torch.add(t_ul, 1, out=steps[k, lo:hi, p:])
    rows = torch.arange(pairs, device=device)
    n, m = n.to(device), m.to(device)
    return cost[n + m, n, rows] / steps[n + m, n, rows]


def _bins(lengths: np.ndarray) -> np.ndarray:
    """Length classes about 35 % wide (exact up to 4 frames): few batches, ~25 % padding."""
    return np.where(lengths <= 4, lengths, 4 + np.floor(np.log(np.maximum(lengths, 4) / 4) / np.log(1.35))).astype(int)


def pair_dtw(frames: ItemFrames, rows: np.ndarray, cols: np.ndarray, distance: str, device: torch.device,
             unit_distance: tuple[float, float] | None) -> torch.Tensor:
    """DTW of item rows[p] (frames down) against item cols[p] (frames across), batched by length class."""
    n, m = frames.length[rows], frames.length[cols]
    order = np.lexsort((n, n + m, _bins(m), _bins(n)))
    klass = (_bins(n) * 4096 + _bins(m))[order]
    bounds = np.flatnonzero(np.diff(klass)) + 1
    out = torch.empty(len(rows), dtype=torch.float32, device=device)
    cpu, workspace = device.type == "cpu", Workspace()
    cells_budget = (1 << 21) if cpu else (1 << 25)
    dim = 1 if frames.ids else frames.data.shape[1]
    for group in np.split(order, bounds):
        N, M = int(n[group].max()), int(m[group].max())
        per = max(1, min(cells_budget // (N * M), (cells_budget * 8) // ((N + M) * dim)))
        for lo in range(0, len(group), per):
            sel = group[lo : lo + per]
            out[torch.from_numpy(sel).to(device)] = _batch_dtw(frames, rows[sel], cols[sel], N, M, distance,
                                                               device, unit_distance, workspace)
    return out


def _batch_dtw(frames: ItemFrames, rows, cols, N: int, M: int, distance: str, device, unit_distance,
               workspace: Workspace) -> torch.Tensor:
    n, m = frames.length[rows], frames.length[cols]
    idx_x = frames.start[rows][:, None] + np.minimum(np.arange(N)[None, :], n[:, None] - 1)
    idx_y = frames.start[cols][:, None] + np.minimum(np.arange(M)[None, :], m[:, None] - 1)
    idx_x, idx_y = torch.from_numpy(idx_x).to(device), torch.from_numpy(idx_y).to(device)
    if frames.ids:
        same, different = unit_distance
        equal = frames.data[idx_x][:, :, None] == frames.data[idx_y][:, None, :]
        dist = torch.where(equal, torch.tensor(same, device=device), torch.tensor(different, device=device))
    else:
        dist = frame_distances(frames.data[idx_x], frames.data[idx_y], distance)
    return dtw(dist.float().contiguous(), torch.from_numpy(n), torch.from_numpy(m), workspace)

