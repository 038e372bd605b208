"""Where `cpc abx`, `cpc units` and the demo get frames, audio and speakers: a feature source is a mapping
file -> (frames, dim) array or (frames,) unit ids, read from a folder of `<file>.npy`, feature shards
(cpc.eval.feature_shards), a units `.txt` (cpc.eval.units), or computed on the fly from audio (`ExtractedFeatures`
over `open_audio`); `read_speakers` maps utterances to speakers. Item files name files by stem, so every source is
keyed that way."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from cpc.errors import UserError
from cpc.eval.feature_shards import read_feature_shards, shard_urls
from cpc.eval.units import read_unit_text


class SourceError(UserError, ValueError):
    """A feature, audio or speaker source that cannot be read as one; the message names it and where."""


class MissingKeys(UserError, KeyError):
    """Files (or utterances) asked for that a source does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder named as a source (features, item file, units) that is not there."""


class FeatureDict(dict):
    """file -> features, with where they came from (`source`) and, when the source records it, `frame_rate` (Hz)."""

    def __init__(self, *args, source: str | None = None, frame_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.source, self.frame_rate = source, frame_rate


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
                raise SourceError(f"feature folder {self.path}: {name!r} twice ({self.paths[name]} and {file})")
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


def load_feature_shards(spec: str | os.PathLike, layer: str | None = None,
                        keys: Sequence[str] | None = None) -> FeatureDict:
    """Feature shards written by `cpc extract --format shards` or `cpc units apply` as key -> array, with the frame
    rate they record; `keys` keeps only those (saves memory), `layer` picks the member."""
    arrays, frame_rate = read_feature_shards(spec, layer, keys)
    return FeatureDict(arrays, source=str(spec), frame_rate=frame_rate)


def open_features(spec: str | os.PathLike, keys: Sequence[str] | None = None, layer: str | None = None) -> Mapping:
    """What a user names as FEATURES: a folder of `<file>.npy`, a shard column written by `cpc extract` or `cpc
    units apply` (a folder with index.json, an index, a tar or brace pattern), or a units `.txt`."""
    path = Path(spec)
    text = str(spec)
    if path.is_file() and path.suffix == ".txt":
        return FeatureDict(read_unit_text(path), source=str(path))
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
            raise SourceError(str(error)) from None

    return load


def open_audio(spec: str | os.PathLike, sample_rate: int | None, keys: Sequence[str] | None = None) -> FeatureDict:
    """file -> waveform (or a loader of it): audio shards (their keys), or an audio folder or one audio file (each
    file's name without extension, the names item files use, e.g. LibriSpeech `1272-128104-0000`). `keys` keeps
    only those; shard samples skipped (another sample rate, unreadable) are named in the result's `source`."""
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
                    raise SourceError(f"audio folder {spec}: two files named {name!r}; item files name files by stem")
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
        raise SourceError(f"audio {spec}: {error}") from None
    return audio


def read_speakers(spec: str, keys: Sequence[str] = ()) -> dict[str, str]:
    """utterance -> speaker from: a text file of `utterance speaker` lines; shards (their metadata's speaker); or
    `prefix:SEP`, the key up to the first SEP (`prefix:-` for LibriSpeech ids, 1272-128104-0000 -> 1272)."""
    if spec.startswith("prefix:"):
        sep = spec[len("prefix:"):]
        if not sep:
            raise SourceError("speakers prefix:SEP needs a separator, e.g. prefix:-")
        return {key: key.split(sep, 1)[0] for key in keys}
    path = Path(spec)
    if path.is_file() and not path.name.endswith((".json", ".tar")):
        speakers = {}
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise SourceError(f"{path} line {number}: expected `utterance speaker`, got {len(parts)} fields")
            speakers[parts[0]] = parts[1]
        return speakers
    import webdataset as wds

    speakers = {}
    for sample in wds.WebDataset(shard_urls(spec, "speaker shards"), shardshuffle=False, nodesplitter=None,
                                 empty_check=False):
        meta = json.loads(sample["json"]) if "json" in sample else {}
        if meta.get("speaker"):
            speakers[sample["__key__"]] = str(meta["speaker"])
    if not speakers:
        raise SourceError(f"no speaker in the metadata of the shards {spec}; give a file of `utterance speaker` lines")
    return speakers

