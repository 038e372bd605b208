"""cpc.eval.feature_shards: what the writer puts in a sample is what the reader gives back (arrays bit for bit, key
order, the frame rate), members are picked by layer, and mistakes name the shards and the sample."""

import json

import numpy as np
import pytest
import webdataset as wds

from cpc.data.shards import resolve_shards
from cpc.eval.feature_shards import (FeatureShardError, MissingShards, read_feature_shards, shard_urls,
                                     write_feature_shards)


def arrays(dim: int | None, dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {"u2": 7, "u1": 3, "u3": 12}  # not sorted: the order written is the order kept
    return {key: (rng.normal(size=(n, dim)) if dim else rng.integers(0, 50, n)).astype(dtype)
            for key, n in shapes.items()}


def test_features_round_trip_with_their_record(tmp_path):
    written = arrays(5, np.float16)
    index = write_feature_shards(written.items(), tmp_path / "c", "c", 100.0)
    assert index["samples"] == 3 and len(index["shards"]) == 1
    read, rate = read_feature_shards(tmp_path / "c")
    assert list(read) == list(written) and rate == 100.0
    for key, array in written.items():
        assert read[key].dtype == np.float16 and np.array_equal(read[key], array)
    (sample,) = [s for s in wds.WebDataset(resolve_shards(tmp_path / "c"), shardshuffle=False) if s["__key__"] == "u3"]
    assert json.loads(sample["json"]) == {"frames": 12, "dim": 5, "layer": "c", "frame_rate": 100.0, "seconds": 0.12}
    some, _ = read_feature_shards(tmp_path / "c" / "shard-000000.tar", keys=["u1", "u3"])
    assert list(some) == ["u1", "u3"]


def test_unit_ids_round_trip_with_extra_record_fields(tmp_path):
    written = arrays(None, np.int16)
    write_feature_shards(written.items(), tmp_path / "units", "units", 50.0, k=50, features="c")
    read, rate = read_feature_shards(tmp_path / "units", layer="units")
    assert rate == 50.0 and all(np.array_equal(read[k], v) and read[k].dtype == np.int16 for k, v in written.items())
    sample = next(iter(wds.WebDataset(resolve_shards(tmp_path / "units"), shardshuffle=False)))
    assert json.loads(sample["json"]) == {"frames": 7, "layer": "units", "k": 50, "features": "c",
                                          "frame_rate": 50.0, "seconds": 0.14}


def test_mistakes_name_the_shards_and_the_sample(tmp_path):
    write_feature_shards(arrays(2, np.float32).items(), tmp_path / "c", "c", 100.0)
    with pytest.raises(FeatureShardError, match=r"^shard sample 'u2' has no z.npy member \(members: \['c.npy'\]\)$"):
        read_feature_shards(tmp_path / "c", layer="z")
    with pytest.raises(FeatureShardError, match=r"no feature arrays read from .* for the keys given$"):
        read_feature_shards(tmp_path / "c", keys=["nobody"])
    with pytest.raises(MissingShards, match=f"^speaker shards {tmp_path / 'none'}: "):
        shard_urls(tmp_path / "none", "speaker shards")
