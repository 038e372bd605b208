"""Shards: samples (FLAC audio or uint8 frame arrays, JSON metadata, frame labels) written as WebDataset tars with
the index beside them, and a shard specification (index file, folder, brace pattern or URL list) resolved back
into shard URLs.

The index (`index.json`) records per shard the sample count and total duration, so training can size epochs and
probes can report coverage without reading any audio.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import soundfile as sf
import webdataset as wds

from cpc.data.ingest import AudioItem, NonFiniteAudio, load_item
from cpc.data.labels import fit_labels, frame_samples, safe_key
from cpc.errors import UserError

INDEX_NAME = "index.json"
INDEX_FORMAT = "cpc-shards/1"


class ShardError(UserError, ValueError):
    """Shards named that are not cpc shards or hold nothing."""


class MissingShards(UserError, FileNotFoundError):
    """Shard files or folders named that do not exist."""


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


FULL_SCALE = 32767 / 32768  # the largest 16-bit sample: a recording clipped in 16-bit PCM sits here
CLIPPED_SHARE = 0.001  # a recording with more of its samples at full scale is reported as clipped
DC_SHARE = 0.1  # ... one whose mean is over this share of its RMS as offset (the RMS input norm shrinks its speech)


def recording_flaws(audio: np.ndarray) -> dict[str, str]:
    """What is worth telling about a readable recording, flaw -> detail: digital silence (every sample zero),
    clipping (the share of samples at full scale) and a DC offset (mean against RMS). Kept, not skipped: the
    user decides; sharding cannot undo either."""
    if not audio.any():
        return {"are digital silence (every sample 0)": ""}
    flaws = {}
    clipped = float(np.count_nonzero(np.abs(audio) >= FULL_SCALE)) / len(audio)
    if clipped > CLIPPED_SHARE:
        flaws[f"are clipped (over {CLIPPED_SHARE:.1%} of samples at full scale)"] = f" ({clipped:.1%})"
    mean, rms = float(audio.mean(dtype=np.float64)), float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if abs(mean) > DC_SHARE * rms:
        flaws[f"have a DC offset (mean over {DC_SHARE:.0%} of the RMS)"] = f" (mean {mean:+.3g}, RMS {rms:.3g})"
    return flaws


def audio_samples(
    items: Iterable[AudioItem],
    sample_rate: int,
    max_seconds: float = 30.0,
    alignments: dict[str, np.ndarray] | None = None,
    errors: dict[str, list[str]] | None = None,
    notes: dict[str, list[str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """WebDataset samples for `items`: recordings cut into pieces of at most `max_seconds` (at 10 ms boundaries),
    FLAC-encoded, with `.json` metadata and, when `alignments` has the key, int16 `.labels.npy` frame labels.
    Unreadable files, files with NaN or infinite samples and label mismatches are recorded in `errors` (reason ->
    files) and skipped; silent, clipped or offset recordings are written and recorded in `notes`."""
    errors = {} if errors is None else errors
    notes = {} if notes is None else notes
    hop = frame_samples(sample_rate)
    piece = max(hop, int(max_seconds * sample_rate) // hop * hop)
    for item in items:
        key = item.key or safe_key(Path(item.path).stem)
        try:
            audio = load_item(item, sample_rate)
        except NonFiniteAudio as error:
            errors.setdefault("non-finite samples (NaN or Inf)", []).append(str(error))
            continue
        except ValueError as error:
            errors.setdefault("unreadable audio", []).append(str(error))
            continue
        if len(audio) < hop:
            errors.setdefault("empty audio (under one 10 ms frame)", []).append(f"{item.path} ({len(audio)} samples)")
            continue
        for flaw, detail in recording_flaws(audio).items():
            notes.setdefault(flaw, []).append(item.path + detail)
        labels = None
        if alignments is not None:
            if key not in alignments:
                errors.setdefault("no alignment (written without labels)", []).append(key)
            else:
                try:
                    labels = fit_labels(alignments[key], len(audio) // hop, key)
                except ValueError as error:
                    errors.setdefault("label/frame count mismatch", []).append(str(error))
                    continue
        pieces = max(1, -(-len(audio) // piece))
        for index in range(pieces):
            start = index * piece
            chunk = audio[start : start + piece]
            sample_key = key if pieces == 1 else f"{key}_p{index:03d}"
            meta = {
                "sample_rate": sample_rate,
                "num_samples": len(chunk),
                "speaker": item.speaker,
                "source": item.path,
                "utterance": key,
                "offset_samples": start,
                **item.fields,
            }
            sample = {"__key__": sample_key, "flac": encode_flac(chunk, sample_rate), "json": json.dumps(meta).encode()}
            if labels is not None:
                sample["labels.npy"] = npy_bytes(labels[start // hop : (start + len(chunk)) // hop])
            yield sample


def clip_samples(clips: Iterable[tuple[str, np.ndarray, dict[str, Any]]], fps: float = 25.0) -> Iterator[dict[str, Any]]:
    """(key, frames uint8 (T, H, W, C), meta) -> shard samples; meta may hold "targets" (clip class ids) and
    "labels" (one id per frame)."""
    for key, frames, meta in clips:
        meta = dict(meta)
        labels = meta.pop("labels", None)
        meta.update(num_samples=len(frames), sample_rate=meta.get("fps", fps))  # the index reports seconds of video
        sample = {"__key__": key, "frames.npy": npy_bytes(np.ascontiguousarray(frames, dtype=np.uint8)),
                  "json": json.dumps(meta).encode()}
        if labels is not None:
            sample["labels.npy"] = npy_bytes(np.asarray(labels, dtype=np.int16))
        yield sample


def write_shards(
    samples: Iterable[dict[str, Any]],
    pattern: str,
    max_bytes: float = 500e6,
    max_count: int = 1_000_000,
    index_path: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write samples with webdataset's ShardWriter (local path or any URL it can write, e.g. `pipe:...`) and the
    index: per shard its sample count and seconds of audio (each sample's json `seconds`, or `num_samples` /
    `sample_rate`)."""
    from cpc.progress import progress_bar
    from cpc.signals import interruptible

    if "%" not in pattern:
        raise ValueError(f"shard pattern {pattern!r} needs a %-format for the shard number, e.g. shard-%06d.tar")
    local_dir = None if "://" in pattern or pattern.startswith("pipe:") else Path(pattern).parent
    if local_dir is not None:
        local_dir.mkdir(parents=True, exist_ok=True)
    shards: dict[str, dict[str, Any]] = {}
    keys: set[str] = set()
    opened: list[str] = []  # every shard file this call starts, named before it exists: removed if the call fails

    def opening(name: str) -> str:  # ShardWriter's opener: the writer then opens the name as it would without one
        opened.append(name)
        return name

    try:
        with wds.ShardWriter(pattern, maxsize=max_bytes, maxcount=max_count, verbose=0, opener=opening) as writer:
            # A Ctrl-C while soundfile encodes would be swallowed by its cffi callback: taken between samples.
            for sample in progress_bar(interruptible(samples), desc="writing shards", unit="sample",
                                       disable=not progress):
                if sample["__key__"] in keys:
                    raise ShardError(f"duplicate sample key {sample['__key__']!r} ({pattern}): keys must be unique")
                keys.add(sample["__key__"])
                writer.write(sample)
                meta = json.loads(sample["json"])
                entry = shards.setdefault(writer.fname, {"samples": 0, "seconds": 0.0})
                entry["samples"] += 1
                entry["seconds"] += (meta["seconds"] if "seconds" in meta
                                     else meta.get("num_samples", 0) / meta.get("sample_rate", 1))
        index = {
            "format": INDEX_FORMAT,
            "shards": [
                {"url": Path(name).name if local_dir is not None else name, **entry} for name, entry in shards.items()
            ],
            "samples": sum(e["samples"] for e in shards.values()),
            "seconds": sum(e["seconds"] for e in shards.values()),
        }
        if index_path is None and local_dir is not None:
            index_path = str(local_dir / INDEX_NAME)
        if index_path is not None:
            if local_dir is not None:
                opened.append(index_path)  # an index cut short goes with its shards
            with wds.gopen(index_path, "wb") as stream:
                stream.write(json.dumps(index, indent=1).encode())
    except BaseException:  # an error, Ctrl-C: no shard is left without the index that lists it
        if local_dir is not None:
            for name in opened:
                Path(name).unlink(missing_ok=True)
        raise
    return index


def read_index(path: str | os.PathLike) -> dict[str, Any]:
    """A shard index (index.json) as written by `write_shards`; ShardError if it is not one."""
    path = Path(path)
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f", line {error.lineno}, column {error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        raise ShardError(f"the shard index is not JSON ({path}{where}): write the shards again with "
                         "`cpc shards`") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("shards"), list):
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise ShardError(f"{path} is not a cpc shard index (format {found!r}): name the shard files instead, or "
                         "write them with `cpc shards`")
    return index


def resolve_shards(spec: str | os.PathLike | list[str]) -> list[str]:
    """Shard URLs from: a list of URLs, an index.json, a folder holding one, or a brace pattern / single URL.
    Local paths are checked up front so a typo fails at start, not in a worker."""
    if isinstance(spec, (list, tuple)):
        urls = [str(u) for u in spec]
    else:
        spec = str(spec)
        path = Path(spec)
        if path.is_dir():
            if not (path / INDEX_NAME).exists():
                raise MissingShards(f"shard folder {path} has no {INDEX_NAME}; pass the shard files instead")
            path = path / INDEX_NAME
        if path.name.endswith(".json") and path.exists():
            index = read_index(path)
            urls = [u["url"] if "://" in u["url"] or u["url"].startswith(("/", "pipe:")) else str(path.parent / u["url"])
                    for u in index["shards"]]
            if not urls:
                raise ShardError(f"the shard index lists no shards, an empty shard set ({path}): write the shards "
                                 "again with `cpc shards`, from a source that has readable recordings")
        else:
            import braceexpand

            urls = list(braceexpand.braceexpand(spec))
    if not urls:
        raise ShardError(f"no shards in {spec!r}: name shard files, a folder with an {INDEX_NAME} or the index")
    missing = [u for u in urls if "://" not in u and not u.startswith("pipe:") and not Path(u).exists()]
    if missing:
        raise MissingShards(f"{len(missing)} shard(s) not found, first: {missing[0]}: check the path (shards are "
                            f"tar files, a brace pattern, a folder with an {INDEX_NAME} or the index itself)")
    return urls


def write_splits(
    items: list[AudioItem],
    out: str | os.PathLike,
    splits: dict[str, set[str]] | None = None,
    alignments: dict[str, np.ndarray] | None = None,
    max_bytes: float = 500e6,
    max_seconds: float = 30.0,
    *,
    sample_rate: int,
) -> dict[str, dict[str, Any]]:
    """Shards (+ index.json) per split under out/<split>/, or straight under out/ without splits; items outside
    every split are left out. Keys that collide, and split lists naming keys the corpus lacks, fail before
    anything is written. Prints a summary and every problem met (each file once); returns the indexes."""
    from cpc.progress import progress_bar

    out = Path(out)
    check_keys(items)
    known = {item.key for item in items}
    for name, keys in (splits or {}).items():
        absent = sorted(keys - known)
        if absent:
            raise ShardError(f"{len(absent)} of the {len(keys)} utterances split {name!r} lists are not in the "
                             f"corpus ({', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}): fix the list or "
                             "the source (a folder's keys are file paths under it without suffix, / and other signs "
                             "as _)")
    chosen = {"": items} if splits is None else {name: [i for i in items if i.key in keys] for name, keys in splits.items()}
    indexes = {}
    for name, members in chosen.items():
        errors: dict[str, list[str]] = {}
        notes: dict[str, list[str]] = {}
        # Written in a seeded random order, not speaker by speaker: a shard then holds many speakers, and so does
        # every training batch read from a few shards (batch negatives are not mostly same-speaker ones).
        members = sorted(members, key=lambda item: item.key)
        random.Random(f"cpc-shards/{name}").shuffle(members)
        # closed on the way out of an error too, so its last line comes before the error's, not after
        with progress_bar(members, desc=f"sharding {name or 'recordings'}", unit="file", dynamic_ncols=True) as files:
            samples = audio_samples(files, sample_rate, max_seconds, alignments, errors, notes)
            index = write_shards(samples, str(out / name / "shard-%06d.tar"), max_bytes=max_bytes, progress=False)
        print(f"{name or 'shards'}: {index['samples']} samples, {index['seconds'] / 3600:.2f} h "
              f"in {len(index['shards'])} shard(s) under {out / name}")
        for reason, found in errors.items():
            found = list(dict.fromkeys(found))  # each file once
            print(f"  skipped {len(found)}, {reason}: {'; '.join(found[:3])}{' ...' if len(found) > 3 else ''}")
        for flaw, found in notes.items():
            print(f"  kept, but {len(found)} of {len(members)} recordings {flaw}: {'; '.join(found[:3])}"
                  f"{' ...' if len(found) > 3 else ''}")
        indexes[name] = index
    if splits is not None:
        outside = len(items) - len({i.key for members in chosen.values() for i in members})
        if outside:
            print(f"{outside} recording(s) in no split were left out")
    return indexes


def check_keys(items: list[AudioItem]) -> None:
    """ShardError naming the recordings when two share a shard key (e.g. `a b.wav` and `a_b.wav` both become
    `a_b`): checked before writing, so no partial shard is left behind."""
    paths: dict[str, list[str]] = {}
    for item in items:
        paths.setdefault(item.key or safe_key(Path(item.path).stem), []).append(item.path)
    shared = {key: found for key, found in paths.items() if len(found) > 1}
    if shared:
        key, found = next(iter(shared.items()))
        more = f"; {len(shared) - 1} more keys are shared" if len(shared) > 1 else ""
        raise ShardError(f"{len(found)} recordings share the shard key {key!r} once made shard-safe ({', '.join(found)}"
                         f"{more}): rename all but one (keys keep letters, digits, _ and -), or list them in a "
                         "manifest with a unique key column")
