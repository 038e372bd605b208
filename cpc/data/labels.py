"""Frame-level labels: the CPC alignment format (one label per 10 ms frame) read and fitted to the audio; split
lists; shard keys."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from cpc.errors import UserError

FRAME_SECONDS = 0.01  # one label per 10 ms frame: the CPC alignment format


class LabelError(UserError, ValueError):
    """An alignment file or split list that is missing or malformed."""


def frame_samples(sample_rate: int) -> int:
    """Samples per 10 ms label frame at `sample_rate`."""
    return round(sample_rate * FRAME_SECONDS)


def safe_key(text: str) -> str:
    """A WebDataset key: no dots (webdataset splits keys at the first dot) and no path separators."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", text)


def read_alignments(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The CPC phone-probe format (`converted_aligned_phones.txt`): `utt_id label label ...`, one label per 10 ms."""
    if not Path(path).is_file():
        raise LabelError(f"alignments file {path} does not exist: check the --alignments path (one line per "
                         "utterance: key, then one integer label per 10 ms frame)")
    alignments = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            alignments[safe_key(parts[0])] = np.asarray([int(v) for v in parts[1:]], dtype=np.int16)
        except ValueError as error:
            raise LabelError(f"{path} line {number}: labels must be integers ({error}): one line per utterance, "
                             "its key then integer labels") from None
    return alignments


def fit_labels(labels: np.ndarray, frames: int, key: str, tolerance: int = 1) -> np.ndarray:
    """Labels trimmed or edge-padded to exactly `frames`; a mismatch beyond `tolerance` frames is an error."""
    if abs(len(labels) - frames) > tolerance:
        raise ValueError(f"{key}: {len(labels)} frame labels for {frames} frames of audio (tolerance {tolerance})")
    if len(labels) >= frames:
        return labels[:frames]
    return np.concatenate([labels, np.full(frames - len(labels), labels[-1], dtype=labels.dtype)])


def read_splits(specs: list[str]) -> dict[str, set[str]]:
    """["train=train.txt", "test=test.txt"] -> {"train": {keys...}, ...}; each file lists one key per line."""
    splits = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            raise LabelError(f"--split {spec}: a split is NAME=FILE, e.g. --split test=test.txt")
        if not Path(path).is_file():
            raise LabelError(f"split list {path} (for split {name!r}) does not exist: check the --split path")
        splits[name] = {safe_key(line.strip()) for line in Path(path).read_text().splitlines() if line.strip()}
    return splits


LABEL_NAMES = "phones.txt"  # label names by id, one per line: beside a corpus's split folders


def read_label_names(path: str | os.PathLike) -> list[str]:
    """Label names by id from a file with one name per line (a corpus's phones.txt)."""
    if not Path(path).is_file():
        raise LabelError(f"label names file {path} does not exist: one name per line, line n naming label n - 1")
    return Path(path).read_text().split()


def label_names_beside(shards: str | os.PathLike) -> list[str] | None:
    """The phones.txt of a shard set, if there is one: in its folder or the folder above (where `cpc shards` and
    the bundled corpora keep it, beside the split folders)."""
    path = Path(shards)
    folder = path if path.is_dir() else path.parent if path.is_file() else None
    for place in [folder, folder.parent] if folder is not None else []:
        if (place / LABEL_NAMES).is_file():
            return read_label_names(place / LABEL_NAMES)
    return None
