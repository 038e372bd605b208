"""Ingest: what a corpus on disk is made of, before it becomes shards. Audio folders and TSV manifests become
`AudioItem`s (path, speaker, key, metadata), read by `load_audio`; video files and folders of frame images become
clips of uint8 frames (decoded with PyAV, resized with torchvision)."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf

from cpc.data.labels import safe_key
from cpc.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au")


@dataclass
class AudioItem:
    """One recording to shard: where it is, whose voice, and optional extra metadata fields."""

    path: str
    speaker: str = ""
    key: str = ""  # unique and dot-free; derived from the path when empty
    fields: dict[str, Any] = field(default_factory=dict)
    # Audio that is not one whole file (a Kaldi pipe or segment, a Lhotse cut, a dataset row): returns (mono float32
    # samples, their rate); `path` then only names it in messages. See `load_item`.
    read: Callable[[], tuple[np.ndarray, int]] | None = None


class IngestError(UserError, ValueError):
    """A corpus on disk that cannot become shards as given: a missing source, manifest column or file."""


def corpus_items(source: str | os.PathLike, speaker_level: int = 1) -> list[AudioItem]:
    """The recordings of an audio folder (`items_from_folder`) or a TSV manifest (`items_from_manifest`)."""
    source = Path(source)
    if source.is_dir():
        return items_from_folder(source, speaker_level)
    if source.is_file():
        return items_from_manifest(source)
    raise IngestError(f"{source} does not exist: give a folder of audio files or a TSV manifest "
                      "(header row with path and speaker columns)")


def items_from_folder(root: str | os.PathLike, speaker_level: int = 1) -> list[AudioItem]:
    """Every audio file under `root` (sorted); speaker = the name of the folder `speaker_level` levels up."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder {root} does not exist")
    items = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        relative = path.relative_to(root)
        parents = relative.parents
        if speaker_level > 1 and speaker_level > len(parents) - 1:  # level 1 on a flat folder: no speakers
            raise IngestError(f"{path} is {len(parents) - 1} folder level(s) below {root}, so --speaker-level "
                              f"{speaker_level} names no folder for its speaker: move it into a speaker folder, or "
                              "use a --speaker-level its path has")
        speaker = parents[speaker_level - 1].name if 0 < speaker_level <= len(parents) - 1 else ""
        items.append(AudioItem(str(path), speaker, safe_key(str(relative.with_suffix("")))))
    if not items:
        raise IngestError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}: point at the folder that "
                          "holds the recordings (searched recursively)")
    return items


def items_from_manifest(path: str | os.PathLike) -> list[AudioItem]:
    """A TSV with a header row: `path` and `speaker` columns required, any other columns kept as metadata.
    Relative paths are taken relative to the manifest's folder. Every listed file must exist."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"manifest {path} does not exist: check the path")
    lines = path.read_text().splitlines()
    if not any(line.strip() for line in lines):
        raise IngestError(f"manifest {path} is empty: write a header row (path, speaker, tab-separated), then one "
                          "row per recording")
    header = lines[0].split("\t")
    missing = [c for c in ("path", "speaker") if c not in header]
    if missing:
        raise IngestError(f"manifest {path} lacks column(s) {missing} (header {header}): the first row must name "
                          "the columns, tab-separated, path and speaker among them")
    items, absent = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(header):
            raise IngestError(f"manifest {path} line {number} has {len(values)} fields, the header {len(header)}: "
                              "separate the columns with tabs, one value per column")
        row = dict(zip(header, values))
        audio = Path(row.pop("path"))
        audio = audio if audio.is_absolute() else path.parent / audio
        if not audio.is_file():
            absent.append(f"{audio} (line {number})")
        speaker = row.pop("speaker")
        key = safe_key(row.pop("key", "") or audio.stem)
        items.append(AudioItem(str(audio), speaker, key, row))
    if absent:
        raise IngestError(f"{len(absent)} of the {len(items)} recordings manifest {path} lists do not exist (first "
                          f"{absent[0]}): fix those paths (relative ones are taken from the manifest's folder)")
    return items


def items_from_path(path: str | os.PathLike) -> list[AudioItem]:
    """The recordings of an audio folder (`items_from_folder`), or a single audio file (its key: its name without
    suffix), what commands reading audio accept where they accept a folder."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
        return [AudioItem(str(path), "", safe_key(path.stem))]
    return items_from_folder(path)


def is_audio_file(path: str | os.PathLike) -> bool:
    """Whether `path` is one audio file (by its suffix), not a folder, shards or an index."""
    return Path(path).is_file() and Path(path).suffix.lower() in AUDIO_EXTENSIONS


class NonFiniteAudio(ValueError):
    """A recording holding NaN or infinite samples: never passed on (one NaN makes every later frame NaN)."""


def check_finite(audio: np.ndarray, path: str, offset: int = 0) -> np.ndarray:
    """`audio` unchanged if every sample is finite, else NonFiniteAudio naming `path` and the first bad sample
    (`offset`: the index of audio[0] in the file)."""
    finite = np.isfinite(audio)
    if not finite.all():  # one pass, ~1 ms per minute of audio
        first = offset + int(np.argmin(finite))
        raise NonFiniteAudio(f"cannot read audio {path}: it holds NaN or infinite samples (the first is sample "
                             f"{first})")
    return audio


def open_audio_file(path: str):
    """`path` opened with soundfile; ValueError `cannot read audio PATH: reason` when it is not readable audio."""
    if not Path(path).is_file():
        raise ValueError(f"cannot read audio {path}: no such file")
    try:
        return sf.SoundFile(path)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError or TypeError by format
        reason = str(error).replace(f"Error opening {str(path)!r}: ", "")  # the path is named once
        raise ValueError(f"cannot read audio {path}: {reason}") from None


def audio_blocks(path: str, block: int) -> Iterator[np.ndarray]:
    """A file's samples, down-mixed to float32 mono, `block` at a time (the last block shorter), in constant
    memory; NonFiniteAudio when a block holds NaN or infinite samples."""
    with open_audio_file(path) as file:
        blocks = file.blocks(block, dtype="float32", always_2d=True)
        for number in itertools.count():
            try:
                audio = next(blocks)
            except StopIteration:
                return
            except Exception as error:  # a file that breaks off mid-way, as load_audio reports it
                raise ValueError(f"cannot read audio {path}: {error}") from None
            yield check_finite(audio.mean(axis=1), path, number * block)


def load_audio(path: str, sample_rate: int) -> np.ndarray:
    """Any file soundfile reads -> float32 mono at `sample_rate` (down-mixed, resampled with torchaudio).
    ValueError naming the file when it does not read, NonFiniteAudio when it holds NaN or infinite samples."""
    with open_audio_file(path) as file:
        try:
            audio, rate = file.read(dtype="float32", always_2d=True), file.samplerate
        except Exception as error:
            raise ValueError(f"cannot read audio {path}: {error}") from None
    return to_rate(check_finite(audio.mean(axis=1), path), rate, sample_rate)


def load_item(item: AudioItem, sample_rate: int) -> np.ndarray:
    """An item's audio as float32 mono at `sample_rate`: its file (`load_audio`), or what its `read` returns."""
    if item.read is None:
        return load_audio(item.path, sample_rate)
    mono, rate = item.read()
    return to_rate(check_finite(mono, item.path), rate, sample_rate)


def to_rate(mono: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """float32 mono samples at `rate` -> at `sample_rate` (torchaudio's resampler)."""
    if rate == sample_rate or not len(mono):
        return mono
    import torch
    import torchaudio.functional

    return torchaudio.functional.resample(torch.from_numpy(mono), rate, sample_rate).numpy()


VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def resize_frames(frames: np.ndarray, size: int | None, grey: bool) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 1 or 3) uint8: the shorter side scaled to `size`, centre crop."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, C, H, W), what torchvision's v2 ops take
    if size is not None:
        video = TF.center_crop(TF.resize(video, size, antialias=True), [size, size])
    if grey:
        video = TF.rgb_to_grayscale(video)
    return video.permute(0, 2, 3, 1).contiguous().numpy()


def read_video(path: str | Path, fps: float | None = None) -> tuple[np.ndarray, float]:
    """A video file -> (frames (T, H, W, 3) uint8, frames per second), decoded with PyAV; with `fps`, frames are
    taken at that rate (nearest earlier frame), so clips from sources of different rates line up in time."""
    try:
        import av
    except ImportError:
        raise ImportError("reading video files needs PyAV: pip install 'cpc[video]' (or pip install av)") from None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode video ({error})") from None
    if not frames:
        raise ValueError(f"{path}: no video frames")
    video = np.stack(frames)
    if fps is None or abs(fps - rate) < 1e-6:
        return video, rate
    picks = np.floor(np.arange(0, len(video) * fps / rate) * rate / fps).astype(int)
    return video[picks[picks < len(video)]], fps


def read_frame_folder(folder: Path) -> np.ndarray:
    """A folder of frame images, in name order -> (T, H, W, 3) uint8."""
    from PIL import Image

    names = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in names])


def video_sources(root: str | Path) -> list[Path]:
    """Video files and folders of frame images under `root` (recursively), in name order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    folders = sorted(d for d in [root, *root.rglob("*")] if d.is_dir() and any(
        f.suffix.lower() in FRAME_SUFFIXES for f in d.iterdir()))
    if not files and not folders:
        raise ValueError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) or frame-image folders under {root}")
    return files + folders


def source_key(root: str | Path, source: Path) -> str:
    """A video's shard key: its path under the root, without suffix, made key-safe."""
    return safe_key(str(source.relative_to(root).with_suffix(""))) or "frames"


def folder_clips(root: str | Path, sources: list[Path] | None = None, size: int | None = 64,
                 fps: float | None = None, clip_frames: int = 0, grey: bool = False, class_level: int = 0,
                 skipped: list[str] | None = None) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
    """Videos (decodable by PyAV) and folders of frame images under `root` (or just `sources` among them), decoded
    one at a time -> (key, frames uint8, meta) clips for `clip_samples`. Long videos are cut into clips of
    `clip_frames` frames, keys "<video key>_NNNN" (0: one clip per video). With class_level = n, the folder n levels
    above a video names its class (UCF-101 style class/video.avi): meta "targets" {"class": id}, ids in sorted name
    order over all of root, and "class_name". Unreadable videos are reported in `skipped` and left out."""
    root = Path(root)
    everything = video_sources(root)
    class_of = lambda p: p.parents[class_level - 1].name if class_level else None
    classes = {name: i for i, name in enumerate(sorted({class_of(p) for p in everything} - {None}))}
    for source in everything if sources is None else sources:
        try:
            frames, rate = read_video(source, fps) if source.is_file() else (read_frame_folder(source), fps or 25.0)
        except ValueError as error:
            if skipped is None:
                raise
            skipped.append(str(error))
            continue
        frames = resize_frames(frames, size, grey)
        key = source_key(root, source)
        meta: dict[str, Any] = {"source": str(source), "fps": rate}
        if class_level:
            meta.update(targets={"class": classes[class_of(source)]}, class_name=class_of(source))
        step = clip_frames or len(frames)
        for number, start in enumerate(range(0, len(frames) - step + 1, step)):
            yield (f"{key}_{number:04d}" if clip_frames else key), frames[start : start + step], dict(meta)
