"""The feature-shard format: one sample per utterance, `__key__`, a `<layer>.npy` array ((frames, dim) features or
(frames,) unit ids) and a `json` record {frames, [dim,] layer, ..., frame_rate, seconds}, in WebDataset tars
`shard-NNNNNN.tar` with `index.json` beside them. `cpc extract --format shards` and `cpc units apply` write it
with `write_feature_shards`; every reader of it (`cpc abx`, `cpc.eval.sources`) goes through `read_feature_shards`."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cpc.errors import UserError

SHARD_PATTERN = "shard-%06d.tar"


class FeatureShardError(UserError, ValueError):
    """Shards named as features (or speakers) that cannot be read as such; the message names them."""


class MissingShards(UserError, FileNotFoundError):
    """Shards named as features (or speakers) that are not there."""


def feature_sample(key: str, array: np.ndarray, layer: str, frame_rate: float, **record) -> dict:
    """One shard sample: `<layer>.npy` holding `array` and its json record (`record` adds fields, e.g. k)."""
    from cpc.data.shards import npy_bytes

    shape = {"frames": len(array), **({"dim": array.shape[1]} if array.ndim == 2 else {})}
    meta = {**shape, "layer": layer, **record, "frame_rate": frame_rate, "seconds": len(array) / frame_rate}
    return {"__key__": key, f"{layer}.npy": npy_bytes(array), "json": json.dumps(meta).encode()}


def write_feature_shards(arrays: Iterable[tuple[str, np.ndarray]], out: str | os.PathLike, layer: str,
                         frame_rate: float, **record) -> dict:
    """(key, array) pairs -> feature shards and index.json in the folder `out` (made if needed); returns the index."""
    from cpc.data.shards import write_shards

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = (feature_sample(key, array, layer, frame_rate, **record) for key, array in arrays)
    return write_shards(samples, str(out / SHARD_PATTERN), progress=False)


def shard_urls(spec: str | os.PathLike, what: str = "feature shards") -> list[str]:
    """Shard URLs from a folder holding index.json, an index.json, or a tar path / brace pattern; `what` names
    them in the error."""
    from cpc.data.shards import resolve_shards

    try:
        return resolve_shards(spec)
    except FileNotFoundError as error:
        raise MissingShards(f"{what} {spec}: {error}") from None
    except ValueError as error:
        raise FeatureShardError(f"{what} {spec}: {error}") from None


def read_feature_shards(spec: str | os.PathLike, layer: str | None = None, keys: Sequence[str] | None = None
                        ) -> tuple[dict[str, np.ndarray], float | None]:
    """Feature shards -> (key -> array, the frame rate in Hz they record, None if absent or mixed). `layer` picks
    the member (default: the one the record names, else the only .npy); `keys` keeps only those (saves memory)."""
    import webdataset as wds

    wanted = None if keys is None else set(keys)
    arrays, rates = {}, set()
    for sample in wds.WebDataset(shard_urls(spec), shardshuffle=False, nodesplitter=None, empty_check=False):
        key = sample["__key__"]
        if wanted is not None and key not in wanted:
            continue
        meta = json.loads(sample["json"]) if "json" in sample else {}
        name = layer if layer is not None else meta.get("layer")
        rates.add(meta.get("frame_rate"))
        members = [m for m in sample if m.endswith(".npy")]
        member = f"{name}.npy" if name is not None else (members[0] if len(members) == 1 else None)
        if member not in sample:
            raise FeatureShardError(f"shard sample {key!r} has no {member or 'single .npy'} member "
                                    f"(members: {members})")
        arrays[key] = np.load(io.BytesIO(sample[member]), allow_pickle=False)
    if not arrays:
        raise FeatureShardError(f"no feature arrays read from {spec}" + (" for the keys given" if wanted else ""))
    return arrays, (rates.pop() if len(rates) == 1 else None)
