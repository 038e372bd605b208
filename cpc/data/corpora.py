"""Corpora in the formats of other speech toolkits, read into `AudioItem`s for `cpc shards`, each through the library
that defines the format, an optional extra: a Kaldi data directory (kaldiio, extra `kaldi`), a Lhotse manifest
(lhotse, extra `lhotse`) and a Hugging Face dataset saved to disk (datasets, extra `hf`). `read_corpus` picks the
reader from what the source is and falls back to audio folders and TSV manifests (cpc.data.ingest). Every reader
gives each utterance a shard-safe key, its speaker and its extra metadata (e.g. the transcript) as fields; the
audio is read when the shard is written, through `AudioItem.read`."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from cpc.data.ingest import AudioItem, IngestError, corpus_items
from cpc.data.labels import FRAME_SECONDS, safe_key
from cpc.errors import require


def read_corpus(source: str | os.PathLike, speaker_level: int = 1, audio_column: str = "audio",
                speaker_column: str | None = None) -> list[AudioItem]:
    """The utterances of `source`: a Kaldi data directory (holds wav.scp), a Lhotse manifest (.jsonl.gz, .json),
    a saved Hugging Face dataset (holds dataset_info.json or dataset_dict.json), else an audio folder or TSV
    manifest (`corpus_items`)."""
    source = Path(source)
    if source.is_dir() and (source / "wav.scp").is_file():
        return items_from_kaldi_dir(source)
    if is_lhotse_manifest(source):
        return items_from_lhotse(source)
    if is_hf_dataset(source):
        return items_from_hf_dataset(source, audio_column, speaker_column)
    return corpus_items(source, speaker_level)


def corpus_alignments(source: str | os.PathLike) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """The frame labels a source carries itself, and their names by id: a Lhotse manifest's phone alignments
    (`lhotse_alignments`); (None, []) for every other source and for manifests without alignments."""
    if not is_lhotse_manifest(Path(source)):
        return None, []
    alignments, names = lhotse_alignments(source)
    return alignments or None, names


# ---------------------------------------------------------------------------------------------------------- Kaldi

def read_kaldi_table(path: Path) -> dict[str, str]:
    """A Kaldi text table (`key value...` per line; wav.scp, utt2spk, text, segments) as {key: rest of line}."""
    table = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split(maxsplit=1)  # the key ends at the first space or tab
        if not parts:
            continue
        if len(parts) == 1:
            raise IngestError(f"{path} line {number} has a key ({parts[0]!r}) and no value: each line is `key value`")
        table[parts[0]] = parts[1].strip()
    return table


def kaldi_audio(entry: str, start: float = 0.0, end: float = -1.0):
    """A reader of one wav.scp entry (a path, `path.ark:offset`, or a `command |` pipe), cut to [start, end) seconds
    (end -1: to the end) as Kaldi's extract-segments does. Read with kaldiio's `open_like_kaldi` and decoded
    with soundfile (kaldiio's own loader would also unpickle `PKL` entries; audio needs none)."""

    def read() -> tuple[np.ndarray, int]:
        kaldiio = require("kaldiio", "kaldi", "reading a Kaldi data directory")
        name, offset = entry, None
        head, _, tail = entry.rpartition(":")
        if not entry.rstrip().endswith("|") and head and tail.isdigit():
            name, offset = head, int(tail)
        try:
            stream = kaldiio.utils.open_like_kaldi(name, "rb")
            if offset is not None:
                stream.seek(offset)
            data = stream.read()
            failed = stream.close()
            if failed:
                raise ValueError(f"the command exited with status {failed >> 8}")
            audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as error:  # a missing file, a failing pipe, bytes soundfile cannot decode
            raise ValueError(f"cannot read audio {entry}: {error}") from None
        mono = audio.mean(axis=1)
        first = int(start * rate)
        return (mono[first:] if end < 0 else mono[first : int(end * rate)]), rate

    return read


def items_from_kaldi_dir(folder: str | os.PathLike) -> list[AudioItem]:
    """A Kaldi data directory: wav.scp (recordings: paths, ark offsets or `cmd |` pipes), segments (utterances cut
    from recordings, when present), utt2spk (speakers), text (kept as the field "text"). Keys: the utterance ids
    made shard-safe, in sorted order."""
    require("kaldiio", "kaldi", "reading a Kaldi data directory")
    folder = Path(folder)
    tables = {name: read_kaldi_table(folder / name) if (folder / name).is_file() else {}
              for name in ("wav.scp", "segments", "utt2spk", "text")}
    recordings = tables["wav.scp"]
    if not recordings:
        raise IngestError(f"{folder / 'wav.scp'} lists no recordings: one `recording-id path` (or `recording-id "
                          "command |`) per line")
    segments = {}
    for utterance, value in tables["segments"].items():
        parts = value.split()
        try:
            recording, start, end = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise IngestError(f"{folder / 'segments'}: utterance {utterance!r} has {value!r}; each line is "
                              "`utterance-id recording-id start-seconds end-seconds`") from None
        if recording not in recordings:
            raise IngestError(f"{folder / 'segments'}: utterance {utterance!r} is cut from recording {recording!r}, "
                              f"which wav.scp does not list: add it to wav.scp or drop the line")
        segments[utterance] = (recording, start, end)
    if not tables["segments"]:
        segments = {recording: (recording, 0.0, -1.0) for recording in recordings}
    items = []
    for utterance, (recording, start, end) in sorted(segments.items()):
        fields = {"text": tables["text"][utterance]} if utterance in tables["text"] else {}
        if tables["segments"]:
            fields.update(recording=recording, start_seconds=start, end_seconds=end)
        entry = recordings[recording]
        items.append(AudioItem(entry, tables["utt2spk"].get(utterance, ""), safe_key(utterance), fields,
                               read=kaldi_audio(entry, start, end)))
    return items


# --------------------------------------------------------------------------------------------------------- Lhotse

LHOTSE_SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json")


def is_lhotse_manifest(path: Path) -> bool:
    return path.is_file() and path.name.endswith(LHOTSE_SUFFIXES)


@dataclass
class LhotseUtterance:
    """One utterance of a Lhotse manifest: a stretch of a cut or recording and the supervisions over it."""

    key: str
    source: Any  # a lhotse Cut or Recording
    supervisions: list
    start: float = 0.0  # seconds into `source`, the origin of the supervisions' and alignments' times
    duration: float | None = None  # None: the whole source


def lhotse_utterances(path: str | os.PathLike) -> list[LhotseUtterance]:
    """A Lhotse manifest: a CutSet (one utterance per cut: key the cut id), or a RecordingSet whose SupervisionSet
    lies beside it (`*recordings*` -> `*supervisions*` in the name): one utterance per supervision (key its id), or
    per recording when there is none."""
    lhotse = require("lhotse", "lhotse", "reading a Lhotse manifest")
    path = Path(path)
    try:
        manifest = lhotse.load_manifest(path)
    except Exception as error:  # not JSON, or JSON lhotse does not recognise
        raise IngestError(f"{path} is not a Lhotse manifest lhotse can read ({error}): give a CutSet or a "
                          "RecordingSet (.jsonl.gz)") from None
    if isinstance(manifest, lhotse.CutSet):
        return [LhotseUtterance(cut.id, cut, list(cut.supervisions)) for cut in manifest]
    if not isinstance(manifest, lhotse.RecordingSet):
        raise IngestError(f"{path} holds a {type(manifest).__name__}: give the CutSet, or the RecordingSet (its "
                          "SupervisionSet is read from beside it)")
    beside = path.with_name(path.name.replace("recordings", "supervisions"))
    if beside == path or not beside.is_file():
        return [LhotseUtterance(recording.id, recording, []) for recording in manifest]
    utterances = []
    for supervision in lhotse.load_manifest(beside):
        if supervision.recording_id not in manifest:
            raise IngestError(f"{beside}: supervision {supervision.id!r} names recording {supervision.recording_id!r}, "
                              f"which {path.name} does not hold")
        utterances.append(LhotseUtterance(supervision.id, manifest[supervision.recording_id], [supervision],
                                          supervision.start, supervision.duration))
    return utterances


def items_from_lhotse(path: str | os.PathLike) -> list[AudioItem]:
    """The utterances of a Lhotse manifest (`lhotse_utterances`) as items: speaker the first supervision's, the
    supervisions' text as the field "text", audio loaded by lhotse with its channels down-mixed."""
    return [lhotse_item(utterance) for utterance in lhotse_utterances(path)]


def lhotse_item(utterance: LhotseUtterance) -> AudioItem:
    source, start, duration = utterance.source, utterance.start, utterance.duration
    speakers = [s.speaker for s in utterance.supervisions if s.speaker]
    texts = [s.text for s in utterance.supervisions if s.text]
    fields = {"text": " ".join(texts)} if texts else {}
    if duration is not None:
        fields.update(recording=source.id, start_seconds=start, end_seconds=start + duration)

    def read() -> tuple[np.ndarray, int]:
        try:
            audio = source.load_audio() if duration is None else source.load_audio(offset=start, duration=duration)
        except Exception as error:  # a missing or undecodable file: lhotse's own exception types vary by backend
            raise ValueError(f"cannot read audio {utterance.key}: {error}") from None
        return np.asarray(audio, np.float32).reshape(-1, audio.shape[-1]).mean(axis=0), source.sampling_rate

    return AudioItem(utterance.key, speakers[0] if speakers else "", safe_key(utterance.key), fields, read=read)


GAP_LABEL = "sil"  # label 0: frames that no alignment item covers


def lhotse_alignments(path: str | os.PathLike, kind: str = "phone") -> tuple[dict[str, np.ndarray], list[str]]:
    """Frame labels (one per 10 ms frame, as `read_alignments` gives them) of the utterances of a Lhotse manifest
    whose supervisions carry `kind` alignments, and the label names by id: "sil" (0, also every frame no item
    covers), then the other symbols in sorted order. Each frame takes the symbol of the item holding its centre.
    Empty when no supervision carries such an alignment."""
    spans = {}
    for utterance in lhotse_utterances(path):
        items = [item for s in utterance.supervisions for item in (s.alignment or {}).get(kind, [])]
        if items:
            duration = utterance.duration if utterance.duration is not None else utterance.source.duration
            spans[safe_key(utterance.key)] = (utterance.start, duration, items)
    names = [GAP_LABEL] + sorted({item.symbol for _, _, items in spans.values() for item in items} - {GAP_LABEL})
    ids = {name: number for number, name in enumerate(names)}
    alignments = {}
    for key, (start, duration, items) in spans.items():
        centres = start + (np.arange(int(duration / FRAME_SECONDS + 1e-6)) + 0.5) * FRAME_SECONDS
        labels = np.zeros(len(centres), np.int16)
        for item in items:
            labels[(centres >= item.start) & (centres < item.start + item.duration)] = ids[item.symbol]
        alignments[key] = labels
    return alignments, (names if alignments else [])


# ---------------------------------------------------------------------------------------------- Hugging Face

def is_hf_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` (or `DatasetDict.save_to_disk`)."""
    return path.is_dir() and ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()
                              or (path / "dataset_dict.json").is_file())


def items_from_hf_dataset(folder: str | os.PathLike, audio_column: str = "audio",
                          speaker_column: str | None = None) -> list[AudioItem]:
    """A Hugging Face audio dataset saved to disk: one utterance per row, its audio from `audio_column` (an Audio
    feature, decoded here with soundfile from the stored bytes or path), its speaker from `speaker_column`
    (default: `speaker`, else `speaker_id`, else none), its key from the `id` column (else row000000, ...);
    other text and number columns kept as metadata."""
    datasets = require("datasets", "hf", "reading a Hugging Face dataset")
    folder = Path(folder)
    if (folder / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in folder.iterdir() if p.is_dir()) or ["SPLIT"]
        raise IngestError(f"{folder} holds the splits {', '.join(splits)} of a DatasetDict: give one split's folder "
                          f"(e.g. {folder / splits[0]}) per `cpc shards` call")
    table = datasets.load_from_disk(str(folder))
    columns = table.column_names
    if not isinstance(table.features.get(audio_column), datasets.Audio):
        audio_like = [name for name, kind in table.features.items() if isinstance(kind, datasets.Audio)]
        raise IngestError(f"{folder}: column {audio_column!r} is not an Audio column (columns {columns}): name the "
                          f"audio column with --audio-column" + (f" (e.g. {audio_like[0]})" if audio_like else ""))
    if speaker_column is None:
        speaker_column = next((name for name in ("speaker", "speaker_id") if name in columns), "")
    elif speaker_column not in columns:
        raise IngestError(f"{folder}: no column {speaker_column!r} (--speaker-column); its columns are {columns}")
    table = table.cast_column(audio_column, datasets.Audio(decode=False))  # decoding here needs no torchcodec
    metadata = [name for name, kind in table.features.items() if name not in (audio_column, speaker_column, "id")
                and isinstance(kind, datasets.Value) and json_scalar(kind.dtype)]
    items = []
    others = [name for name in columns if name != audio_column]
    records = table.select_columns(others) if others else [{}] * len(table)  # zero columns would read as zero rows
    for row, record in enumerate(records):
        key = safe_key(str(record["id"])) if "id" in columns else f"row{row:06d}"
        speaker = str(record[speaker_column]) if speaker_column else ""
        items.append(AudioItem(f"{folder} row {row}", speaker, key, {name: record[name] for name in metadata},
                               read=hf_audio(table, row, audio_column, f"{folder} row {row}")))
    return items


def json_scalar(dtype: str) -> bool:
    """A datasets Value dtype that JSON metadata holds as it is: text, booleans and numbers."""
    return dtype in ("string", "large_string", "bool") or dtype.startswith(("int", "uint", "float"))


def hf_audio(table, row: int, column: str, where: str):
    """A reader of one row's stored audio (bytes, else the file it names)."""

    def read() -> tuple[np.ndarray, int]:
        stored = table[row][column]
        try:
            audio, rate = sf.read(io.BytesIO(stored["bytes"]) if stored.get("bytes") else stored["path"],
                                  dtype="float32", always_2d=True)
        except Exception as error:  # no bytes and a missing file, or bytes soundfile cannot decode
            raise ValueError(f"cannot read audio {where}: {error}") from None
        return audio.mean(axis=1), rate

    return read
