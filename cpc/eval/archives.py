"""Kaldi feature archives: `cpc extract --format kaldi` writes `feats.ark` (float32 matrices, frames x dim) and
`feats.scp` (key -> byte offset in the archive) through kaldiio, the pair Kaldi and ESPnet tools read
(`copy-feats scp:feats.scp ark,t:-`, `kaldiio.load_scp`). kaldiio is the optional extra `kaldi`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from cpc.errors import UserError, require

KALDI_OUTPUTS = ("feats.ark", "feats.scp")


def check_kaldi_output(dtype: str) -> None:
    """Before any work: kaldiio is installed and the dtype is one Kaldi stores (its matrices are float32 or 64)."""
    require("kaldiio", "kaldi", "--format kaldi")
    if dtype != "float32":
        raise UserError(f"--dtype {dtype} with --format kaldi: Kaldi matrices hold float32; leave --dtype at float32")


def write_kaldi_features(features: Iterable[tuple[str, np.ndarray]], out: str | Path) -> int:
    """(key, (frames, dim) array) pairs -> out/feats.ark + out/feats.scp, in the order given (the scp names the
    archive by its absolute path, so it reads from any folder); returns how many were written."""
    kaldiio = require("kaldiio", "kaldi", "--format kaldi")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{out / 'feats.scp'}") as writer:
        for key, array in features:
            writer(key, np.ascontiguousarray(array, dtype=np.float32))
            count += 1
    return count
