"""Where `cpc extract` puts a corpus's features: one output folder in one of three layouts, `npy` (a `<key>.npy`
(frames, dim) array per utterance, long recordings written piece by piece), `kaldi` (feats.ark + feats.scp,
cpc.eval.archives) or `shards` (cpc.eval.feature_shards). The folder is checked before any work, so the results
of two extractions never mix in one; with `overwrite`, the earlier extraction's files go just before the first
new one is written and other files stay."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from cpc.eval.feature_shards import write_feature_shards
from cpc.eval.features import ExtractError, StreamedFeatures, features_array, save_npy

FORMATS = ("npy", "shards", "kaldi")
DTYPES = {"float16": np.float16, "float32": np.float32}
EARLIER_OUTPUTS = ("*.npy", "shard-*.tar", "index.json", "feats.ark", "feats.scp")  # what an extraction writes


def output_folder(out: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """Checks `out` before any work: a folder that already holds files is refused (ExtractError), so results of
    two extractions never mix, unless `overwrite`; then returns the files an earlier extraction wrote there
    (EARLIER_OUTPUTS), for the caller to delete once the new one is ready to write. Other files are kept."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExtractError(f"output {out} is a file, not a folder: name a folder for the features")
    held = sorted(out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        raise ExtractError(f"output folder {out} already holds {len(held)} file(s) (e.g. {held[0].name}): name an "
                           "empty or new folder, or pass --overwrite to replace an earlier extraction there")
    return sorted({path for pattern in EARLIER_OUTPUTS for path in out.glob(pattern)}) if held else []


class FeatureOutput:
    """An output folder and layout, checked when made (before any work); `write` fills it and says what it wrote."""

    def __init__(self, out: str | os.PathLike, format: str = "npy", dtype: str = "float32", overwrite: bool = False):
        if format not in FORMATS:
            raise ExtractError(f"output format {format!r}: choose one of {', '.join(FORMATS)}")
        if dtype not in DTYPES:
            raise ExtractError(f"output dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
        if format == "kaldi":
            from cpc.eval.archives import check_kaldi_output

            check_kaldi_output(dtype)
        self.out, self.format, self.dtype = Path(out), format, dtype
        self.earlier = output_folder(self.out, overwrite)

    def write(self, features: Iterable[tuple[str, torch.Tensor | StreamedFeatures]], layer: str,
              frame_rate: float) -> str:
        """(key, frames) pairs, in order, into the folder; returns the one line that says what was written where.
        `layer` and `frame_rate` (Hz) go into the shards' records."""
        for path in self.earlier:  # --overwrite: the earlier extraction's files go once this one is ready to write
            path.unlink()
        self.earlier = []
        out, dtype = self.out, DTYPES[self.dtype]
        if self.format == "npy":
            out.mkdir(parents=True, exist_ok=True)
            count = 0
            for key, frames in features:  # a long recording's frames are written as they are computed
                save_npy(out / f"{key}.npy", frames, dtype)
                count += 1
            return f"wrote {count} arrays (frames x dim, {self.dtype}) to {out}"
        if self.format == "kaldi":
            from cpc.eval.archives import write_kaldi_features

            count = write_kaldi_features(((key, features_array(frames)) for key, frames in features), out)
            return f"wrote {count} matrices (frames x dim, float32) to {out / 'feats.ark'} and {out / 'feats.scp'}"
        arrays = ((key, features_array(frames, dtype)) for key, frames in features)
        index = write_feature_shards(arrays, out, layer, frame_rate)
        return f"wrote {index['samples']} feature arrays in {len(index['shards'])} shard(s) to {out}"
