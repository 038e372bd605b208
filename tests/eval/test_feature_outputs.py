"""cpc.eval.feature_outputs: each layout holds exactly the frames given (read back through the formats' own
readers), the line it returns says what went where, and a folder holding files is refused before any work unless
overwrite, which removes an earlier extraction's files only when writing starts."""

import numpy as np
import pytest
import torch

from cpc.eval.feature_outputs import FeatureOutput
from cpc.eval.features import ExtractError
from cpc.eval.sources import open_features


def frames() -> list[tuple[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(key, torch.randn(n, 4, generator=generator)) for key, n in (("b", 5), ("a", 9))]


def test_npy_and_shards_hold_the_frames_given(tmp_path):
    line = FeatureOutput(tmp_path / "npy", "npy", "float16").write(iter(frames()), "c", 100.0)
    assert line == f"wrote 2 arrays (frames x dim, float16) to {tmp_path / 'npy'}"
    line = FeatureOutput(tmp_path / "shards", "shards").write(iter(frames()), "z", 50.0)
    assert line == f"wrote 2 feature arrays in 1 shard(s) to {tmp_path / 'shards'}"
    from_npy, from_shards = open_features(tmp_path / "npy"), open_features(tmp_path / "shards")
    assert from_shards.frame_rate == 50.0 and list(from_shards) == ["b", "a"]
    for key, tensor in frames():
        assert from_npy[key].dtype == np.float16 and np.array_equal(from_npy[key], tensor.numpy().astype(np.float16))
        assert np.array_equal(from_shards[key], tensor.numpy())


def test_a_folder_holding_files_is_refused_first_and_overwrite_replaces_only_an_extraction(tmp_path):
    out = tmp_path / "out"
    FeatureOutput(out, "shards").write(iter(frames()), "c", 100.0)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExtractError, match=r"already holds 3 file\(s\) .* or pass --overwrite"):
        FeatureOutput(out, "npy")
    output = FeatureOutput(out, "npy", overwrite=True)
    assert (out / "index.json").exists()  # nothing goes before writing starts
    output.write(iter(frames()), "c", 100.0)
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "b.npy", "notes.txt"]
    with pytest.raises(ExtractError, match="output format 'hdf5': choose one of npy, shards, kaldi"):
        FeatureOutput(tmp_path / "x", "hdf5")
