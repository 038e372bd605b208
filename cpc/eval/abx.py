"""ABX phone discriminability (Libri-light / ZeroSpeech 2021): item files (read, and written from frame
alignments), feature sources (a folder of .npy, a shard column, a mapping or a callable), and the within/across
speaker ABX error computed as the reference `zrc_abx2` does, with every DTW of many cells run at once in torch.

How the error is defined (same as the reference): items are (file, onset, offset, phone, prev+next context,
speaker); frames are L2-normalised, frame distance is the angular distance acos(<a, b>)/pi (or euclidean / KL),
item distance is DTW cost divided by the backtracked path length. For a cell (A phone, B phone, X group) the score
is P(d(X, A) < d(X, B)) + 0.5 P(=); the error is 1 minus that, averaged over contexts, then speakers, then phone
pairs, in percent."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cpc.devices import pick_device
from cpc.errors import UserError

ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"
SPEAKER_MODES = ("within", "across")
CONTEXT_MODES = ("within", "any")
DISTANCES = ("cosine", "euclidean", "kl", "kl_symmetric")
PAIR_BUDGET = 1 << 21  # DTW pairs drawn per chunk of cells: fixes the random streams, so no device changes them


class ABXError(UserError, ValueError):
    """A bad item file, feature source or option; the message names it and where."""


class MissingKeys(UserError, KeyError):
    """Files (or utterances) asked for that a source does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFile(UserError, FileNotFoundError):
    """An item file, feature folder or feature file that is not there."""


# ----------------------------------------------------------------------------------------------- item files
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


# ------------------------------------------------------------------------------------------- feature sources
class FeatureFolder(Mapping):
    """A folder (searched recursively) of `<file>.npy` arrays (frames, dim), read when asked for."""

    def __init__(self, path: str | os.PathLike, extension: str = ".npy"):
        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_dir():
            raise MissingFile(f"feature folder {self.path} does not exist")
        self.paths: dict[str, Path] = {}
        for file in sorted(self.path.rglob(f"*{extension}")):
            name = file.name[: -len(extension)]
            if name in self.paths:
                raise ABXError(f"feature folder {self.path}: {name!r} twice ({self.paths[name]} and {file})")
            self.paths[name] = file
        if not self.paths:
            raise MissingFile(f"feature folder {self.path} holds no {extension} files")

    def __getitem__(self, name: str) -> np.ndarray:
        return np.load(self.paths[name])

    def __contains__(self, name) -> bool:
        return name in self.paths

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def load_feature_folder(path: str | os.PathLike) -> FeatureFolder:
    """A folder of `<file>.npy` (frames x dim) as a lazy mapping file -> array."""
    return FeatureFolder(path)


def _shard_urls(spec: str | os.PathLike, what: str = "feature shards") -> list[str]:
    """Shard URLs from a folder holding index.json, an index.json, or a tar path / brace pattern."""
    from cpc.data.shards import resolve_shards

    try:
        return resolve_shards(spec)
    except FileNotFoundError as error:
        raise MissingFile(f"{what} {spec}: {error}") from None
    except ValueError as error:
        raise ABXError(f"{what} {spec}: {error}") from None


def load_feature_shards(spec: str | os.PathLike, layer: str | None = None,
                        keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """A shard column written by `cpc extract --format shards` (samples `__key__`, `<layer>.npy`, `json`) as a dict
    key -> (frames, dim) array; `keys` keeps only those (saves memory), `layer` picks the member."""
    import webdataset as wds

    wanted = None if keys is None else set(keys)
    features, rates = FeatureDict(source=str(spec)), set()
    for sample in wds.WebDataset(_shard_urls(spec), shardshuffle=False, nodesplitter=None, empty_check=False):
        key = sample["__key__"]
        if wanted is not None and key not in wanted:
            continue
        meta = json.loads(sample["json"]) if "json" in sample else {}
        name = layer if layer is not None else meta.get("layer")
        rates.add(meta.get("frame_rate"))
        members = [m for m in sample if m.endswith(".npy")]
        member = f"{name}.npy" if name is not None else (members[0] if len(members) == 1 else None)
        if member not in sample:
            raise ABXError(f"shard sample {key!r} has no {member or 'single .npy'} member (members: {members})")
        features[key] = np.load(io.BytesIO(sample[member]), allow_pickle=False)
    if not features:
        raise ABXError(f"no feature arrays read from {spec}" + (" for the keys given" if wanted else ""))
    features.frame_rate = rates.pop() if len(rates) == 1 else None
    return features


class FeatureDict(dict):
    """file -> features, with where they came from (`source`) and, when the source records it, `frame_rate` (Hz)."""

    def __init__(self, *args, source: str | None = None, frame_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.source, self.frame_rate = source, frame_rate


def read_unit_text(path: str | os.PathLike) -> FeatureDict:
    """Unit sequences written by `cpc units apply OUT.txt`: `<file> id id ...` per line -> file -> (frames,) ids."""
    sequences = FeatureDict(source=str(path))
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise MissingFile(f"unit file {path}: {error.strerror or error}") from None
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            sequences[parts[0]] = np.asarray([int(v) for v in parts[1:]], dtype=np.int64)
        except ValueError:
            raise ABXError(f"{path} line {number}: unit ids must be integers (`<file> id id ...`)") from None
    if not sequences:
        raise ABXError(f"unit file {path} holds no sequence (`<file> id id ...` per line)")
    return sequences


def open_features(spec: str | os.PathLike, keys: Sequence[str] | None = None, layer: str | None = None) -> Mapping:
    """What a user names as FEATURES: a folder of `<file>.npy`, a shard column written by `cpc extract` or `cpc
    units apply` (a folder with index.json, an index, a tar or brace pattern), or a units `.txt`."""
    path = Path(spec)
    text = str(spec)
    if path.is_file() and path.suffix == ".txt":
        return read_unit_text(path)
    if (path.is_dir() and (path / "index.json").exists()) or text.endswith((".json", ".tar")) or "{" in text:
        return load_feature_shards(spec, layer, keys)
    if path.is_dir():
        return load_feature_folder(path)
    raise MissingFile(f"features {spec} do not exist (a folder of <file>.npy, feature shards or a units .txt)")


def feature_seconds(features: Mapping, default: float = 0.01) -> float:
    """The frame shift a feature source records (shards of `cpc extract` note their frame rate), else `default`."""
    rate = getattr(features, "frame_rate", None)
    return 1 / rate if rate else default


class ExtractedFeatures(Mapping):
    """file -> features computed when asked for: `compute(wav)` -> (frames, dim) on the audio `audio[file]` holds
    (a waveform, or a callable returning one); nothing is kept after it is returned."""

    def __init__(self, compute: Callable, audio: Mapping, source: str | None = None):
        self.compute, self.audio, self.source = compute, audio, source

    def __getitem__(self, name: str):
        wav = self.audio[name]
        with torch.no_grad():
            return self.compute(wav() if callable(wav) else wav)

    def __contains__(self, name) -> bool:
        return name in self.audio

    def __iter__(self) -> Iterator[str]:
        return iter(self.audio)

    def __len__(self) -> int:
        return len(self.audio)


def _audio_loader(path: str, sample_rate: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from cpc.data.ingest import load_audio

        try:
            return load_audio(path, sample_rate)
        except ValueError as error:  # unreadable audio: the message names the file
            raise ABXError(str(error)) from None

    return load


def open_audio(spec: str | os.PathLike, sample_rate: int | None, keys: Sequence[str] | None = None) -> FeatureDict:
    """file -> waveform (or a loader of it): audio shards (their keys), or an audio folder or one audio file (each
    file's name without extension, the names item files use, e.g. LibriSpeech `1272-128104-0000`). `keys` keeps only those; shard
    samples skipped (another sample rate, unreadable) are named in the result's `source`."""
    from cpc.data.ingest import is_audio_file, items_from_path
    from cpc.data.labelled import load_utterances

    wanted = None if keys is None else set(keys)
    path = Path(spec)
    audio = FeatureDict(source=str(spec))
    try:
        if is_audio_file(path) or (path.is_dir() and not (path / "index.json").exists()):
            for item in items_from_path(path):
                name = Path(item.path).stem
                if name in audio:
                    raise ABXError(f"audio folder {spec}: two files named {name!r}; item files name files by stem")
                if wanted is None or name in wanted:
                    audio[name] = _audio_loader(item.path, sample_rate)
        else:
            utterances = load_utterances(spec, sample_rate)
            audio.update((u.key, u.wav) for u in utterances if wanted is None or u.key in wanted)
            if utterances.skips.counts:
                audio.source = f"{spec} (skipped: {utterances.skips.report()})"
    except FileNotFoundError as error:
        raise MissingFile(f"audio {spec}: {error}") from None
    except ValueError as error:
        if isinstance(error, UserError):
            raise
        raise ABXError(f"audio {spec}: {error}") from None
    return audio


def read_speakers(spec: str, keys: Sequence[str] = ()) -> dict[str, str]:
    """utterance -> speaker from: a text file of `utterance speaker` lines; shards (their metadata's speaker); or
    `prefix:SEP`, the key up to the first SEP (`prefix:-` for LibriSpeech ids, 1272-128104-0000 -> 1272)."""
    if spec.startswith("prefix:"):
        sep = spec[len("prefix:"):]
        if not sep:
            raise ABXError("speakers prefix:SEP needs a separator, e.g. prefix:-")
        return {key: key.split(sep, 1)[0] for key in keys}
    path = Path(spec)
    if path.is_file() and not path.name.endswith((".json", ".tar")):
        speakers = {}
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ABXError(f"{path} line {number}: expected `utterance speaker`, got {len(parts)} fields")
            speakers[parts[0]] = parts[1]
        return speakers
    import webdataset as wds

    speakers = {}
    for sample in wds.WebDataset(_shard_urls(spec, "speaker shards"), shardshuffle=False, nodesplitter=None,
                                 empty_check=False):
        meta = json.loads(sample["json"]) if "json" in sample else {}
        if meta.get("speaker"):
            speakers[sample["__key__"]] = str(meta["speaker"])
    if not speakers:
        raise ABXError(f"no speaker in the metadata of the shards {spec}; give a file of `utterance speaker` lines")
    return speakers


# ------------------------------------------------------------------------------------------------ frames
def normalize_with_singularity(x: torch.Tensor) -> torch.Tensor:
    """(frames, dim) -> (frames, dim + 1): rows L2-normalised plus a border coordinate 1e-12; an all-zero row
    becomes the constant 1/sqrt(dim) with border -2e12, so it sits at the largest cosine distance from any other
    frame and at distance 0 from another zero frame (the reference's rule)."""
    frames, dim = x.shape
    norm = (x**2).sum(dim=1, keepdim=True)
    zero = (norm == 0).view(frames)
    x = x / torch.sqrt(torch.where(norm == 0, torch.ones_like(norm), norm))
    x[zero] = 1 / math.sqrt(dim)
    border = torch.full((frames, 1), 1e-12, dtype=x.dtype, device=x.device)
    border[zero] = -2 * 1e12
    return torch.cat([x, border], dim=1)


def item_frames(onset: np.ndarray, offset: np.ndarray, frames: int, feature_size: float = 0.01
                ) -> tuple[np.ndarray, np.ndarray]:
    """Frame range [start, end) of items: start = max(0, ceil(onset/step - 0.5)), end = min(frames,
    floor(offset/step - 0.5)), computed as the reference does (times multiplied by 1/step)."""
    rate = 1 / feature_size
    start = np.maximum(0, np.ceil(rate * np.asarray(onset, dtype=np.float64) - 0.5)).astype(np.int64)
    end = np.minimum(frames, np.floor(rate * np.asarray(offset, dtype=np.float64) - 0.5)).astype(np.int64)
    return start, end


@dataclass
class _Frames:
    """Every kept item's frames: frames[start[i] : start[i] + length[i]] (float rows, or unit ids when `ids`)."""

    data: torch.Tensor  # (total frames, dim + 1) float32, or (total frames,) int64 unit ids
    start: np.ndarray  # (kept items,)
    length: np.ndarray  # (kept items,)
    keep: np.ndarray  # (kept items,) row numbers in the item table
    ids: bool


def _as_tensor(array, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(array).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ABXError(f"features of {name!r} are not an array ({error})") from None
    if tensor.ndim == 1 and not tensor.is_floating_point() and not tensor.is_complex():
        return tensor.long()
    if tensor.ndim != 2 or tensor.shape[1] == 0:
        raise ABXError(f"features of {name!r} have shape {tuple(tensor.shape)}; expected (frames, dim) "
                         "or (frames,) integer unit ids")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor


def _missing(items: ItemTable, files: list[str], missing: list[str], features) -> MissingKeys:
    where = f" in {features.source}" if getattr(features, "source", None) else ""
    return MissingKeys(f"{len(missing)} of the {len(files)} files of {items.source} have no features{where}, "
                           f"first: {', '.join(missing[:5])} (features are looked up by the item file's #file "
                           "column: extract those files, or use the item file of this set)")


def _load_frames(items: ItemTable, features, feature_size: float, progress: bool) -> _Frames:
    from cpc.progress import progress_bar

    order = np.argsort(items.files, kind="stable")
    names, first = np.unique(items.files[order], return_index=True)
    rows_of = dict(zip(names.tolist(), np.split(order, first[1:])))
    files = sorted(rows_of, key=lambda f: rows_of[f][0])  # item-file order
    getter = features.__getitem__ if isinstance(features, Mapping) else features
    if isinstance(features, Mapping):
        missing = [f for f in files if f not in features]
    else:
        missing = []
    if missing:
        raise _missing(items, files, missing, features)
    chunks, starts, lengths, keeps = [], [], [], []
    total, kind, dim = 0, None, None
    for name in progress_bar(files, desc="ABX features", unit="file", disable=not progress):
        try:
            tensor = _as_tensor(getter(name), name)
        except (KeyError, FileNotFoundError):
            missing.append(name)
            continue
        ids = tensor.ndim == 1
        if kind is None:
            kind, dim = ids, (None if ids else tensor.shape[1])
        elif kind != ids or (not ids and tensor.shape[1] != dim):
            shape = "unit ids" if ids else f"dim {tensor.shape[1]}"
            raise ABXError(f"features of {name!r} ({shape}) differ from the earlier files'"
                             f" ({'unit ids' if kind else f'dim {dim}'})")
        if not ids:
            tensor = normalize_with_singularity(tensor if tensor.dtype == torch.float64 else tensor.float()).float()
        rows = rows_of[name]
        start, end = item_frames(items.onset[rows], items.offset[rows], len(tensor), feature_size)
        ok = (start < len(tensor)) & (end > start)
        rows, start, end = rows[ok], start[ok], end[ok]
        if len(rows):
            index = np.concatenate([np.arange(s, e) for s, e in zip(start.tolist(), end.tolist())])
            chunks.append(tensor[torch.from_numpy(index)])
            starts.append(total + np.cumsum(end - start) - (end - start))
            lengths.append(end - start)
            keeps.append(rows)
            total += len(index)
    if missing:
        raise _missing(items, files, missing, features)
    if not chunks:
        raise ABXError(f"no item of {items.source} has frames in its features (feature_size {feature_size} s?)")
    keep = np.concatenate(keeps)
    by_row = np.argsort(keep, kind="stable")  # items in item-file order
    return _Frames(torch.cat(chunks), np.concatenate(starts)[by_row], np.concatenate(lengths)[by_row],
                   keep[by_row], bool(kind))


# --------------------------------------------------------------------------------------------- distances
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


def _unit_distances(distance: str) -> tuple[float, float]:
    """The frame distance of equal and of different one-hot frames (as the float path computes it)."""
    onehot = normalize_with_singularity(torch.eye(2)).view(1, 2, 3)
    d = frame_distances(onehot, onehot, distance)[0]
    return d[0, 0].item(), d[0, 1].item()


# -------------------------------------------------------------------------------------------------- DTW
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


def _pair_dtw(frames: _Frames, rows: np.ndarray, cols: np.ndarray, distance: str, device: torch.device,
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


def _batch_dtw(frames: _Frames, rows, cols, N: int, M: int, distance: str, device, unit_distance,
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


# ------------------------------------------------------------------------------------------------ cells
@dataclass
class _Groups:
    """Kept items grouped by (context, speaker, phone); group g holds items[offset[g] : offset[g] + size[g]]."""

    items: np.ndarray  # kept-item numbers sorted by group, item-file order inside a group
    offset: np.ndarray
    size: np.ndarray
    context: np.ndarray  # (groups,) codes; all 0 in "any" context mode
    speaker: np.ndarray
    phone: np.ndarray


def _groups(context: np.ndarray, speaker: np.ndarray, phone: np.ndarray) -> _Groups:
    order = np.lexsort((np.arange(len(phone)), phone, speaker, context))
    key = np.stack([context[order], speaker[order], phone[order]])
    new = np.concatenate([[True], np.any(key[:, 1:] != key[:, :-1], axis=0)])
    offset = np.flatnonzero(new)
    size = np.diff(np.concatenate([offset, [len(order)]]))
    return _Groups(order, offset, size, *key[:, offset])


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted rows of `keys` (rows, cols): each row's run start and run length."""
    new = np.concatenate([[True], np.any(keys[1:] != keys[:-1], axis=1)])
    start = np.flatnonzero(new)
    length = np.diff(np.concatenate([start, [len(keys)]]))
    run = np.cumsum(new) - 1
    return start[run], length[run]


def _others(count: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each owner o: positions 0..count[o]-1 except skip[o] -> (owner of each, position)."""
    owner = np.repeat(np.arange(len(count)), np.maximum(count - 1, 0))
    first = np.cumsum(np.maximum(count - 1, 0)) - np.maximum(count - 1, 0)
    q = np.arange(len(owner)) - first[owner]
    return owner, q + (q >= skip[owner])


def _within_cells(g: _Groups) -> dict[str, np.ndarray]:
    """A, B two phone groups of one (context, speaker), A with >= 2 items (X is another A item)."""
    block_start, block_size = _runs(np.stack([g.context, g.speaker], 1))
    a = np.flatnonzero((block_size >= 2) & (g.size >= 2))
    owner, pos = _others(block_size[a], a - block_start[a])
    ga = a[owner]
    gb = block_start[ga] + pos
    return {"a": ga, "b": gb, "x": ga}


def _across_cells(g: _Groups, max_x: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A, B as within; X the same (context, phone A) from up to `max_x` other speakers, drawn once per A."""
    block_start, block_size = _runs(np.stack([g.context, g.speaker], 1))
    by_cp = np.lexsort((g.speaker, g.phone, g.context))
    cp_start, cp_size = _runs(np.stack([g.context[by_cp], g.phone[by_cp]], 1))
    rank = np.empty(len(by_cp), dtype=np.int64)
    rank[by_cp] = np.arange(len(by_cp))
    a = np.flatnonzero((block_size >= 2) & (cp_size[rank] >= 2))
    others = cp_size[rank[a]] - 1
    take = np.minimum(others, max_x)
    # X speakers: a uniform subset of `take` among the `others` groups of A's (context, phone)
    keys = rng.random((len(a), int(others.max()) if len(a) else 0))
    keys[np.arange(keys.shape[1])[None, :] >= others[:, None]] = np.inf
    chosen = np.sort(np.argsort(keys, axis=1, kind="stable")[:, :max_x], axis=1)
    own = rank[a] - cp_start[rank[a]]
    slot_owner = np.repeat(np.arange(len(a)), take)
    slot = chosen[slot_owner, np.arange(len(slot_owner)) - (np.cumsum(take) - take)[slot_owner]]
    gx = by_cp[cp_start[rank[a]][slot_owner] + slot + (slot >= own[slot_owner])]
    ga_slot = a[slot_owner]
    owner, pos = _others(block_size[ga_slot], ga_slot - block_start[ga_slot])
    ga = ga_slot[owner]
    return {"a": ga, "b": block_start[ga] + pos, "x": gx[owner]}


def _draw(g: _Groups, groups: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Items of each group, a uniform subset of `limit` where larger -> (cells, width) item numbers, -1 pad."""
    size = g.size[groups]
    width = int(np.minimum(size, limit).max())
    pos = np.broadcast_to(np.arange(width), (len(groups), width)).copy()
    big = np.flatnonzero(size > limit)
    if len(big):
        keys = rng.random((len(big), int(size[big].max())))
        keys[np.arange(keys.shape[1])[None, :] >= size[big][:, None]] = np.inf
        pos[big] = np.sort(np.argpartition(keys, limit - 1, axis=1)[:, :limit], axis=1)
    out = g.items[np.minimum(g.offset[groups][:, None] + pos, len(g.items) - 1)]
    out[pos >= size[:, None]] = -1
    return out


def _score_chunk(frames: _Frames, g: _Groups, cells: dict[str, np.ndarray], within: bool, limit: int,
                 rng: np.random.Generator, distance: str, device, unit_distance) -> np.ndarray:
    """ABX error of each cell of a chunk (fractions)."""
    sb = _draw(g, cells["b"], limit, rng)
    sa = _draw(g, cells["a"], limit, rng)
    sx = sa if within else _draw(g, cells["x"], limit, rng)
    cols = np.concatenate([sa, sb], axis=1)
    rows = np.broadcast_to(sx[:, :, None], (len(sx), sx.shape[1], cols.shape[1]))
    cols = np.broadcast_to(cols[:, None, :], rows.shape)
    valid = (rows >= 0) & (cols >= 0)
    if within:  # d(a_i, a_j) once per unordered pair, the earlier item down (as the reference's i < j)
        part = (slice(None), slice(None), slice(0, sa.shape[1]))
        valid[part] &= rows[part] != cols[part]
        rows, cols = rows.copy(), cols.copy()
        low, high = np.minimum(rows[part], cols[part]), np.maximum(rows[part], cols[part])
        rows[part], cols[part] = low, high
    count = len(frames.length)
    keys = rows[valid].astype(np.int64) * count + cols[valid]
    unique, inverse = np.unique(keys, return_inverse=True)
    values = _pair_dtw(frames, unique // count, unique % count, distance, device, unit_distance)
    table = torch.full(rows.shape, math.nan, dtype=torch.float32, device=device)
    table[torch.from_numpy(valid).to(device)] = values[torch.from_numpy(inverse).to(device)]
    na, nb, nx = ((torch.from_numpy((s >= 0).sum(1)).to(device).double()) for s in (sa, sb, sx))
    triplets = na * (na - 1) * nb if within else nx * na * nb
    return _cell_errors(table[:, :, : sa.shape[1]], table[:, :, sa.shape[1] :], triplets).cpu().numpy()


def _cell_errors(d_xa: torch.Tensor, d_xb: torch.Tensor, triplets: torch.Tensor) -> torch.Tensor:
    """(cells, X, A) and (cells, X, B) item distances (NaN where absent, and on the diagonal when X is A) ->
    (cells,) errors 1 - [#(d(x,a) < d(x,b)) + 0.5 #(=)] / triplets."""
    cells, nx, na = d_xa.shape
    less = torch.zeros(cells, dtype=torch.float64, device=d_xa.device)
    equal = torch.zeros_like(less)
    rows = max(1, (1 << 24) // max(1, cells * na * d_xb.shape[2]))
    for x in range(0, nx, rows):
        xa, xb = d_xa[:, x : x + rows, :, None], d_xb[:, x : x + rows, None, :]
        less += (xa < xb).sum(dim=(1, 2, 3))
        equal += (xa == xb).sum(dim=(1, 2, 3))
    return 1 - (less + 0.5 * equal) / triplets


def _mean_by(values: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mean of `values` per distinct tuple of `columns` -> (means, the key columns of each mean)."""
    keys = np.stack(columns, axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    means = np.bincount(inverse, values) / np.bincount(inverse)
    return means, list(unique.T)


def _average(errors: np.ndarray, g: _Groups, cells: dict[str, np.ndarray]) -> float:
    """Mean over the cells of one (A speaker, A phone, B phone) (within: its contexts; across: its (context,
    X speaker) pairs), then over A speakers, then over phone pairs: the reference's order."""
    if len(errors) == 0:
        return math.nan
    step, (_, p1, p2) = _mean_by(errors, g.speaker[cells["a"]], g.phone[cells["a"]], g.phone[cells["b"]])
    step, _ = _mean_by(step, p1, p2)
    return float(step.mean())


# ---------------------------------------------------------------------------------------------------- API
@contextlib.contextmanager
def _exact_matmul():
    """float32 matmuls in full precision while scoring (TF32 would move cosine distances by ~1e-3)."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def _modes(value: str, choices: tuple[str, ...], what: str) -> list[str]:
    if value in ("both", "all"):
        return list(choices)
    if value not in choices:
        raise ABXError(f"{what} must be one of {', '.join(choices)} or both, not {value!r}")
    return [value]


def abx_errors(features: Mapping | Callable, items: ItemTable | str | os.PathLike, feature_size: float = 0.01,
               distance: str = "cosine", speaker_mode: str = "both", context_mode: str = "both",
               max_size_group: int = 10, max_x_across: int = 5, seed: int = 3459,
               device: str | torch.device | None = None, progress: bool = True) -> dict[str, float]:
    """ABX error rates in percent, keyed "<speaker mode>-<context mode>" ("within-within", "across-any", ...).
    `features`: file -> (frames, dim) array (or (frames,) unit ids), a mapping or a callable; `items`: an item
    file or read_items' table; `feature_size`: frame shift in seconds."""
    from cpc.progress import progress_bar

    distance = "euclidean" if distance == "euclidian" else distance
    if distance not in DISTANCES:
        raise ABXError(f"distance must be one of {', '.join(DISTANCES)}, not {distance!r}")
    speakers, contexts = _modes(speaker_mode, SPEAKER_MODES, "speaker_mode"), _modes(context_mode, CONTEXT_MODES,
                                                                                     "context_mode")
    if not feature_size > 0:
        raise ABXError(f"feature_size is the frame shift in seconds (e.g. 0.01), not {feature_size}")
    if max_size_group < 2 or max_x_across < 1:
        raise ABXError(f"max_size_group must be >= 2 and max_x_across >= 1 (got {max_size_group}, {max_x_across})")
    device = pick_device(device)  # None / "auto": CUDA when present
    table = items if isinstance(items, ItemTable) else read_items(items)
    frames = _load_frames(table, features, feature_size, progress)
    frames.data = frames.data.to(device)
    unit_distance = _unit_distances(distance) if frames.ids else None

    plans = []
    for context in contexts:
        ctx = table.context[frames.keep] if context == "within" else np.zeros(len(frames.keep), dtype=np.int64)
        g = _groups(ctx, table.speaker[frames.keep], table.phone[frames.keep])
        for speaker in speakers:
            stream = [seed, CONTEXT_MODES.index(context), SPEAKER_MODES.index(speaker)]
            rng = np.random.default_rng(stream + [0])
            cells = _within_cells(g) if speaker == "within" else _across_cells(g, max_x_across, rng)
            plans.append((f"{speaker}-{context}", g, cells, speaker == "within", stream))
    scores: dict[str, float] = {}
    total = sum(len(p[2]["a"]) for p in plans)
    bar = progress_bar(total=total, desc="ABX", unit="cell", disable=not progress)
    with torch.no_grad(), _exact_matmul(), bar:
        for name, g, cells, within, stream in plans:
            bar.set_description(f"ABX {name}")
            width = int(min(max_size_group, g.size.max()))
            per = max(1, PAIR_BUDGET // (2 * width * width))
            errors = []
            for number, lo in enumerate(range(0, len(cells["a"]), per)):
                chunk = {k: v[lo : lo + per] for k, v in cells.items()}
                rng = np.random.default_rng(stream + [number + 1])
                errors.append(_score_chunk(frames, g, chunk, within, max_size_group, rng, distance, device,
                                           unit_distance))
                bar.update(len(chunk["a"]))
            errors = np.concatenate(errors) if errors else np.zeros(0)
            scores[name] = 100 * _average(errors, g, cells)
    return scores
