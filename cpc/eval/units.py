"""Discrete units: k-means over frame features, the way ZeroSpeech and GSLM turn CPC features into unit sequences.
A seeded minibatch k-means in torch (CPU or CUDA; faiss's k-means instead when faiss is importable), frames sampled
uniformly from a corpus in bounded memory, units assigned frame by frame, and the centroids kept in a small file
that `torch.load(weights_only=True)` reads (tensors and plain values only).

    units = fit_units(frames, k=50, seed=0)                  # (frames, dim) -> centroids and fit statistics
    save_units(units, "runs/cpc/units-k50-c.pt"); ids = assign(features, load_units(path).centroids)
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from cpc.devices import pick_device
from cpc.errors import UserError

FORMAT = "cpc-units/1"
BACKENDS = ("auto", "torch", "faiss")


class UnitsError(UserError, ValueError):
    """A units file or k-means request the user can fix; the message names it."""


@dataclass
class Units:
    """Centroids (k, dim) and where they came from: the model and layer whose frames were clustered."""

    centroids: torch.Tensor
    layer: str = "c"
    model: str = ""  # the checkpoint the frames came from
    frame_seconds: float = 0.01
    seed: int = 0
    backend: str = "torch"
    frames: int = 0  # frames clustered
    inertia: float = math.nan  # mean squared distance of those frames to their centroid
    extra: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.centroids.shape[0]


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ k-means
def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(n, dim) x (k, dim) -> (n, k) squared euclidean distances (clamped at 0)."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ centroids.T + centroids.pow(2).sum(1)[None]).clamp_(min=0)


def assign(features: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """(frames, dim) features -> (frames,) int64 id of the nearest centroid (euclidean), on the centroids' device."""
    features = torch.as_tensor(features).to(centroids.device, torch.float32)
    if features.ndim != 2 or features.shape[1] != centroids.shape[1]:
        raise UnitsError(f"features of shape {tuple(features.shape)} do not fit centroids of dim {centroids.shape[1]}")
    return torch.cat([squared_distances(features[i : i + chunk], centroids).argmin(1)
                      for i in range(0, len(features), chunk)]) if len(features) else torch.zeros(0, dtype=torch.long)


def _inertia(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> float:
    total = sum(float(squared_distances(x[i : i + chunk], centroids).min(1).values.double().sum())
                for i in range(0, len(x), chunk))
    return total / max(1, len(x))


def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding on x (n, dim): each next centre drawn with probability proportional to D^2."""
    n = len(x)
    norms = x.pow(2).sum(1)

    def to(pick: int) -> torch.Tensor:  # squared distances of every point to point `pick`
        return (norms - 2 * (x @ x[pick]) + norms[pick]).clamp_(min=0).double()

    picks = [int(torch.randint(n, (1,), generator=generator))]
    closest = to(picks[0])
    for _ in range(1, k):
        weights = closest.cpu()
        if float(weights.sum()) <= 0:  # fewer distinct points than k: any point
            picks.append(int(torch.randint(n, (1,), generator=generator)))
        else:
            picks.append(int(torch.multinomial(weights, 1, generator=generator)))
        closest = torch.minimum(closest, to(picks[-1]))
    return x[picks].clone()


def minibatch_kmeans(x: torch.Tensor, k: int, batch_size: int = 10000, epochs: int = 20, seed: int = 0,
                     init_samples: int = 20000, progress: bool = False) -> torch.Tensor:
    """Minibatch k-means (Sculley 2010, as scikit-learn's MiniBatchKMeans updates): k-means++ seeding on a
    sample, then per batch each centroid moves to the running mean of the frames it was given; a centroid that
    gets no frame in an epoch restarts at a random frame. x (n, dim) on any device -> centroids (k, dim).
    Every random draw comes from a CPU generator seeded with `seed`: the same centroids on every run."""
    from cpc.progress import progress_bar

    n, dim = x.shape
    generator = torch.Generator().manual_seed(seed)
    init = torch.randperm(n, generator=generator)[: max(init_samples, k)]
    centroids = _kmeans_pp(x[init.to(x.device)], k, generator)
    counts = torch.zeros(k, dtype=torch.float64, device=x.device)
    steps = max(1, math.ceil(n / batch_size))
    for _ in progress_bar(range(epochs), desc=f"k-means (k={k}, {n} frames)", unit="epoch", disable=not progress):
        order = torch.randperm(n, generator=generator).to(x.device)
        seen = torch.zeros(k, dtype=torch.bool, device=x.device)
        for step in range(steps):
            batch = x[order[step * batch_size : (step + 1) * batch_size]]
            ids = squared_distances(batch, centroids).argmin(1)
            got = torch.bincount(ids, minlength=k).double()
            if x.device.type == "cpu":
                sums = torch.zeros_like(centroids).index_add_(0, ids, batch)
            else:  # CUDA's index_add_ adds in a varying order; a matmul gives the same sums on every run
                sums = torch.nn.functional.one_hot(ids, k).to(batch.dtype).T @ batch
            counts += got
            rate = (got / counts.clamp(min=1)).to(batch.dtype)[:, None]
            mean = sums / got.clamp(min=1).to(batch.dtype)[:, None]
            centroids += rate * (mean - centroids)
            seen |= got > 0
        dead = (~seen).nonzero().flatten()
        if len(dead):
            restart = torch.randint(n, (len(dead),), generator=generator).to(x.device)
            centroids[dead], counts[dead] = x[restart], 0
    return centroids


def _faiss_kmeans(x: torch.Tensor, k: int, epochs: int, seed: int, init_samples: int = 20000) -> torch.Tensor:
    """faiss's (full-batch, subsampled to 256 frames per centroid) k-means from the same k-means++ seeding."""
    import faiss

    generator = torch.Generator().manual_seed(seed)
    init = torch.randperm(len(x), generator=generator)[: max(init_samples, k)]
    start = _kmeans_pp(x[init.to(x.device)], k, generator).cpu().numpy()
    data = np.ascontiguousarray(x.detach().float().cpu().numpy())
    kmeans = faiss.Kmeans(data.shape[1], k, niter=epochs, seed=seed, verbose=False,
                          gpu=x.device.type == "cuda" and hasattr(faiss, "StandardGpuResources"))
    kmeans.train(data, init_centroids=np.ascontiguousarray(start, dtype=np.float32))
    return torch.from_numpy(kmeans.centroids.copy()).to(x.device)


def fit_units(frames: torch.Tensor, k: int = 50, seed: int = 0, batch_size: int = 10000, epochs: int = 20,
              backend: str = "auto", device: str | torch.device | None = None, progress: bool = False, **record
              ) -> Units:
    """k-means of frames (n, dim) into k units: minibatch k-means in torch, or faiss's k-means ("auto": faiss when
    importable). `device`: default CUDA when present. `record`: layer, model, frame_seconds to keep in the Units."""
    if backend not in BACKENDS:
        raise UnitsError(f"k-means backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        backend = "faiss" if faiss_available() else "torch"
    if backend == "faiss" and not faiss_available():
        raise UnitsError("k-means backend faiss: faiss is not installed (pip install faiss-cpu), or use torch")
    frames = torch.as_tensor(frames, dtype=torch.float32)
    if frames.ndim != 2 or len(frames) < k or k < 1:
        raise UnitsError(f"k-means of {k} units needs at least {k} frames (n, dim); got shape {tuple(frames.shape)}")
    device = pick_device(device)  # None / "auto": CUDA when present
    x = frames.to(device)
    if backend == "faiss":
        centroids = _faiss_kmeans(x, k, epochs, seed)
    else:
        centroids = minibatch_kmeans(x, k, batch_size, epochs, seed, progress=progress)
    return Units(centroids.float().cpu(), seed=seed, backend=backend, frames=len(x), inertia=_inertia(x, centroids),
                 **record)


# ------------------------------------------------------------------------------------------- frames to fit
def sample_frames(features: Iterable[torch.Tensor], max_frames: int, seed: int = 0) -> torch.Tensor:
    """A uniform random sample of at most `max_frames` frames (rows) from a stream of (frames, dim) arrays, in
    memory bounded by about 2 x max_frames rows: every frame gets a seeded random key, the smallest keys stay."""
    generator = torch.Generator().manual_seed(seed)
    kept, keys = None, None
    for array in features:
        array = torch.as_tensor(array, dtype=torch.float32).cpu()
        if len(array) == 0:
            continue
        new_keys = torch.rand(len(array), generator=generator)
        kept = array if kept is None else torch.cat([kept, array])
        keys = new_keys if keys is None else torch.cat([keys, new_keys])
        if len(kept) > 2 * max_frames:
            best = keys.topk(max_frames, largest=False).indices.sort().values
            kept, keys = kept[best], keys[best]
    if kept is None:
        raise UnitsError("no frames to cluster (no utterance gave a frame)")
    if len(kept) > max_frames:
        best = keys.topk(max_frames, largest=False).indices.sort().values
        kept = kept[best]
    return kept


# ------------------------------------------------------------------------------------------------- files
def save_units(units: Units, path: str | os.PathLike) -> Path:
    """The centroids and their record as a torch file of tensors and plain values (read with weights_only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **asdict(units)}
    state["centroids"] = units.centroids.detach().float().cpu().contiguous()
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def load_units(path: str | os.PathLike) -> Units:
    """A units file written by `save_units` (`cpc units fit`), read safely."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UnitsError(f"units file {path} does not exist (cpc units fit writes one)") from None
    except Exception as error:  # unpickling errors of every kind
        raise UnitsError(f"{path} is not a readable units file ({str(error).strip().splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UnitsError(f"{path} is not a units file of cpc units fit (format {FORMAT})")
    state.pop("format")
    return Units(**state)


def write_unit_text(path: str | os.PathLike, sequences: Iterable[tuple[str, torch.Tensor]]) -> int:
    """`<key> id id ...` per utterance (the alignments' format, read back by `read_unit_text`); returns the number
    of lines."""
    count = 0
    with open(path, "w") as out:
        for key, ids in sequences:
            out.write(key + " " + " ".join(map(str, torch.as_tensor(ids).tolist())) + "\n")
            count += 1
    return count


def read_unit_text(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Unit sequences written by `write_unit_text` (`cpc units apply OUT.txt`) -> key -> (frames,) int64 ids."""
    sequences = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise UnitsError(f"unit file {path}: {error.strerror or error}") from None
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            sequences[parts[0]] = np.asarray([int(v) for v in parts[1:]], dtype=np.int64)
        except ValueError:
            raise UnitsError(f"{path} line {number}: unit ids must be integers (`<file> id id ...`)") from None
    if not sequences:
        raise UnitsError(f"unit file {path} holds no sequence (`<file> id id ...` per line)")
    return sequences


def write_unit_sequences(sequences: Iterable[tuple[str, torch.Tensor]], units: Units, out: str | os.PathLike
                         ) -> tuple[int, int | None]:
    """Unit sequences to `out`: OUT.txt lines (`write_unit_text`), else a folder of feature shards with a
    `units.npy` column (int16/int32 ids; json: k, the clustered layer, frame_rate) -> (sequences, shards or None)."""
    from cpc.eval.feature_shards import write_feature_shards

    if str(out).endswith(".txt"):
        return write_unit_text(out, sequences), None
    dtype = np.int16 if units.k <= np.iinfo(np.int16).max else np.int32
    arrays = ((key, torch.as_tensor(ids).cpu().numpy().astype(dtype)) for key, ids in sequences)
    index = write_feature_shards(arrays, out, "units", 1 / units.frame_seconds, k=units.k, features=units.layer)
    return index["samples"], len(index["shards"])


def model_name(spec: str) -> str:
    """What a units file records as its model: a checkpoint's absolute path (a run folder's newest), else the spec."""
    from cpc.checkpoint import resolve

    path = Path(spec.partition(":")[2] if spec.startswith("random:") else spec)
    if not path.exists():
        return spec
    resolved = str(resolve(path).resolve())
    return f"random:{resolved}" if spec.startswith("random:") else resolved


def default_path(spec: str, k: int, layer: str) -> Path:
    """Where `cpc units fit` writes by default: beside the checkpoint (in the run folder), else under runs/units."""
    path = Path(spec)
    name = f"units-k{k}-{layer}.pt"
    if path.is_dir():
        return path / name
    if path.is_file():
        return path.with_name(f"{path.stem}-{name}")
    return Path("runs") / "units" / f"{spec.replace(':', '_')}-{name}"
