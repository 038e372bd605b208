"""Readers of labelled evaluation data, whole and in shard order: utterances with frame labels and speakers, video
clips with per-frame labels and clip targets, images with classes. What is skipped, and why, is kept beside them
(`SkipCounter`), so every evaluation can report it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cpc.data.audio import decode_audio
from cpc.data.shards import INDEX_NAME, read_index, resolve_shards
from cpc.data.stages import SkipCounter, raw_samples
from cpc.data.video import decode_video


@dataclass
class Utterance:
    key: str
    wav: torch.Tensor  # (samples,) float32
    labels: torch.Tensor | None  # (frames,) or None
    speaker: str
    sample_rate: int

    @property
    def inputs(self) -> torch.Tensor:
        """What a featurizer reads."""
        return self.wav


@dataclass
class Clip:
    key: str
    frames: torch.Tensor  # (T, H, W, C) uint8
    labels: torch.Tensor | None  # (T,) per-frame ids (e.g. motion direction) or None
    targets: dict[str, int]  # clip-level class ids, e.g. {"digit": 3}

    @property
    def inputs(self) -> torch.Tensor:
        return self.frames


class Labelled(list):
    """A list of utterances or clips that also carries the skip counts met while reading them (`.skips`) and the
    sample count the shard index promised (`.expected`, None without an index)."""

    def __init__(self, items=(), skips: SkipCounter | None = None, expected: int | None = None):
        super().__init__(items)
        self.skips = skips if skips is not None else SkipCounter()
        self.expected = expected


def indexed_samples(shards) -> int | None:
    """The sample count the index of `shards` records (an index.json, or a folder holding one); None for shard
    files, patterns and lists, which carry no count."""
    if isinstance(shards, (list, tuple)):
        return None
    path = Path(shards)
    path = path / INDEX_NAME if path.is_dir() else path
    return read_index(path).get("samples") if path.name.endswith(".json") and path.is_file() else None


def _labels(item) -> torch.Tensor | None:
    return None if item["labels"] is None else torch.from_numpy(item["labels"].astype("int64"))


def load_utterances(shards, sample_rate: int | None = None) -> Labelled:
    """Every utterance of a shard set once, in shard order, with its frame labels, speaker and sample rate;
    with `sample_rate`, utterances at another rate are skipped (and counted in `.skips`)."""
    skips = SkipCounter()
    utterances = Labelled(skips=skips, expected=indexed_samples(shards))
    for sample in raw_samples(resolve_shards(shards), skips):
        item = decode_audio(sample, skips, sample_rate)
        if item is not None:
            utterances.append(Utterance(item["key"], torch.from_numpy(item["wav"]), _labels(item), item["speaker"],
                                        item["sample_rate"]))
    return utterances


def load_clips(shards) -> Labelled:
    """Every video clip of a shard set once, whole, with its per-frame labels and clip targets."""
    skips = SkipCounter()
    clips = Labelled(skips=skips, expected=indexed_samples(shards))
    for sample in raw_samples(resolve_shards(shards), skips):
        item = decode_video(sample, skips)
        if item is not None:
            clips.append(Clip(item["key"], torch.from_numpy(item["frames"]), _labels(item), item["targets"]))
    return clips


def load_images(shards, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a shard set once, un-augmented (RGB, `size`, normalised as training views) -> (N, 3, size,
    size), (N,) class ids."""
    from cpc.data.images import ImageDataConfig, evaluation_transform, image_stream

    transform = evaluation_transform(size)
    images, labels = [], []
    stream = image_stream(ImageDataConfig(shards=shards, batch_size=256), lambda image: [transform(image)],
                          train=False)
    for batch in stream:
        images.append(batch["views"][:, 0])
        labels.append(batch["targets"]["class"])
    return torch.cat(images), torch.cat(labels)
