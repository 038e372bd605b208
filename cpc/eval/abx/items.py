"""ABX item files: `#file onset offset #phone prev-phone next-phone speaker` rows (seconds), read into an
`ItemTable` of codes, and written from frame alignments (one item per phone run, or per triphone span)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpc.eval.abx import ABXError
from cpc.eval.sources import MissingFile, MissingKeys, read_speakers

ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"


@dataclass
class ItemTable:
    """An item file, one row per item: phone, context ("prev+next") and speaker as codes into the name lists
    (numbered in order of first appearance, as the reference does)."""

    files: np.ndarray  # (items,) str
    onset: np.ndarray  # (items,) seconds, float64
    offset: np.ndarray  # (items,) seconds, float64
    phone: np.ndarray  # (items,) int64 codes into `phones`
    context: np.ndarray  # (items,) int64 codes into `contexts`
    speaker: np.ndarray  # (items,) int64 codes into `speakers`
    phones: list[str]
    contexts: list[str]
    speakers: list[str]
    source: str = "<items>"

    def __len__(self) -> int:
        return len(self.files)


def _parse_time(text: str, path, number: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ABXError(f"{path} line {number}: {column} {text!r} is not a number (seconds)") from None
    if not math.isfinite(value):
        raise ABXError(f"{path} line {number}: {column} {text!r} is not a finite time")
    return value


def read_items(path: str | os.PathLike) -> ItemTable:
    """An item file (header line, then `#file onset offset #phone prev-phone next-phone speaker`, seconds)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise MissingFile(f"item file {path}: {error.strerror or error}") from None
    if lines and len(lines[0].split()) == 7 and not lines[0].startswith("#"):
        raise ABXError(f"{path} line 1: expected the header line ({ITEM_HEADER!r}), found an item")
    codes: dict[str, dict[str, int]] = {"phone": {}, "context": {}, "speaker": {}}
    files, onsets, offsets, columns = [], [], [], {"phone": [], "context": [], "speaker": []}
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 7:
            raise ABXError(f"{path} line {number}: expected 7 columns ({ITEM_HEADER}), got {len(parts)}")
        onset = _parse_time(parts[1], path, number, "onset")
        offset = _parse_time(parts[2], path, number, "offset")
        if offset < onset:
            raise ABXError(f"{path} line {number}: offset {offset} before onset {onset}")
        files.append(parts[0])
        onsets.append(onset)
        offsets.append(offset)
        for name, value in (("phone", parts[3]), ("context", f"{parts[4]}+{parts[5]}"), ("speaker", parts[6])):
            columns[name].append(codes[name].setdefault(value, len(codes[name])))
    if not files:
        raise ABXError(f"{path}: no items (only {len(lines)} line(s))")
    as_codes = {name: np.asarray(values, dtype=np.int64) for name, values in columns.items()}
    return ItemTable(np.asarray(files, dtype=object), np.asarray(onsets), np.asarray(offsets),
                     as_codes["phone"], as_codes["context"], as_codes["speaker"],
                     list(codes["phone"]), list(codes["context"]), list(codes["speaker"]), str(path))


def _segments(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal frame labels: (label, start frame, end frame exclusive) arrays."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    return labels[starts], starts, ends


def write_items(alignments: Mapping[str, Sequence[int] | np.ndarray], speakers: Mapping[str, str],
                out: str | os.PathLike, unit: str = "phone", phones: Sequence[str] | None = None,
                frame_step: float = 0.01, silence: Sequence[int] = (0,)) -> int:
    """Write an item file from frame labels (utterance -> one label per `frame_step`); returns the item count.
    "phone": each phone run is an item; "triphone": the span prev+phone+next, labelled by its centre (the
    Libri-light files). Context is prev+next phone (silence at the utterance edges); silence is never a centre."""
    if unit not in ("phone", "triphone"):
        raise ABXError(f"unit must be 'phone' or 'triphone', not {unit!r}")
    silence = {int(s) for s in silence}

    def name(label: int) -> str:
        if phones is None:
            return str(label)
        if not 0 <= label < len(phones):
            raise ABXError(f"label {label} has no name in the {len(phones)} phones given")
        return phones[label]

    if phones is not None:
        bad = [p for p in phones if not p or any(c.isspace() for c in p)]
        if bad:
            raise ABXError(f"phone names must be non-empty without whitespace: {bad[:5]}")
    edge = name(min(silence)) if silence else "SIL"
    lines = [ITEM_HEADER]
    for utterance, labels in alignments.items():
        if utterance not in speakers:
            raise MissingKeys(f"utterance {utterance!r} has no speaker in the speakers given")
        speaker = str(speakers[utterance])
        if any(c.isspace() for c in utterance + speaker) or not speaker:
            raise ABXError(f"utterance {utterance!r} / speaker {speaker!r}: names must not contain whitespace")
        labels = np.asarray(labels).astype(np.int64).ravel()
        if len(labels) == 0:
            continue
        ids, starts, ends = _segments(labels)
        last = len(ids) - 1
        for i, label in enumerate(ids.tolist()):
            if label in silence or (unit == "triphone" and (i == 0 or i == last)):
                continue
            prev = name(int(ids[i - 1])) if i > 0 else edge
            nxt = name(int(ids[i + 1])) if i < last else edge
            first, end = (starts[i], ends[i]) if unit == "phone" else (starts[i - 1], ends[i + 1])
            lines.append(f"{utterance} {first * frame_step:.4f} {end * frame_step:.4f} {name(label)} {prev} {nxt} "
                         f"{speaker}")
    Path(out).write_text("\n".join(lines) + "\n")
    return len(lines) - 1


def items_from_alignments(alignments: str | os.PathLike, speakers: str, out: str | os.PathLike, unit: str = "phone",
                          phones: str | os.PathLike | None = None, silence: Sequence[int] = (0,)
                          ) -> tuple[int, int, int]:
    """`cpc abx items`: frame labels (`converted_aligned_phones.txt` format) and speakers (see `read_speakers`) ->
    an item file, for the utterances that have both; returns (items, utterances, alignments without a speaker)."""
    from cpc.data.labels import read_alignments

    try:
        labels = read_alignments(alignments)
        names = Path(phones).read_text().split() if phones else None
    except OSError as error:
        raise MissingFile(f"{error.filename}: {error.strerror or error}") from None
    except ValueError as error:
        raise ABXError(str(error)) from None
    if not labels:
        raise ABXError(f"alignments {alignments}: no utterance (`utterance label label ...` per line)")
    who = read_speakers(str(speakers), list(labels))
    kept = {key: value for key, value in labels.items() if key in who}
    if not kept:
        raise MissingKeys(f"none of the {len(labels)} utterances of {alignments} has a speaker in {speakers} "
                          f"(first utterance: {next(iter(labels))}, first with a speaker: {next(iter(who), None)})")
    count = write_items(kept, who, out, unit=unit, phones=names, silence=silence)
    return count, len(kept), len(labels) - len(kept)

