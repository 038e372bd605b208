"""The audio stream: FLAC/WAV shards -> decoded mono waveforms -> fixed-length windows -> batches. The sample rate
and the label frame hop are the model's (CPCModelConfig), passed in by whoever builds the stream.

    stream = audio_stream(AudioDataConfig(shards="data/shards"), train=True, sample_rate=16000, hop=160)
    batch = next(iter(loader(stream)))   # {"wav": (8, 20480), "speaker": (8,), "labels": (8, 128)?, ...}
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from cpc.config import Rules
from cpc.data.augment import AugmentConfig, AugmentStage, check_augment_config
from cpc.data.ingest import NonFiniteAudio, check_finite
from cpc.data.labels import frame_samples
from cpc.data.stages import GROUPS, SkipCounter, Stream, StreamConfig, find_field

AUDIO_FIELDS = ("flac", "wav", "ogg")
# The batch fields of the audio stream, which a CPC model's input adapter names (cpc.models.inputs.AudioInput):
FIELD = "wav"  # each window, what the context network sees
TARGET_FIELD = "wav_future"  # the window's other version, which the target frames come from (when augmenting)


@dataclass
class AudioDataConfig(StreamConfig):
    window: int = 20480  # samples; a multiple of the model's frame hop
    group: str | None = None  # None, "speaker" (same-speaker batches), "sequence" or "source" (one data.mix corpus)
    shuffle_samples: int = 100  # compressed samples shuffled before decoding
    shuffle_windows: int = 1000
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training windows only (CPC2); off by default

    def check(self, rules: Rules) -> None:
        """A ConfigError for the first setting of this audio section (`rules`, e.g. data) that cannot work."""
        super().check(rules)
        rules.at_least(0, "shuffle_samples", "shuffle_windows")
        rules.one_of("group", GROUPS)
        if self.group == "source" and not self.mix:
            rules.fail([rules.key("group")], f"{rules.key('group')} 'source' builds each batch from one corpus of "
                       f"{rules.key('mix')}, but there is no {rules.key('mix')}",
                       f"give {rules.key('mix')}: [SHARDS=WEIGHT, ...], or another {rules.key('group')}")
        check_augment_config(self.augment, rules.key("augment"))


def decode_audio(sample: dict[str, Any], skips: SkipCounter, sample_rate: int | None = None) -> dict[str, Any] | None:
    """One shard sample -> {"key", "wav" float32 (samples,), "sample_rate", "speaker", "utterance", "labels" int16
    or None}; with `sample_rate`, a sample at another rate is skipped and counted, and so is one holding NaN or
    infinite samples (float WAV can), which must never reach a model."""
    key = sample["__key__"]
    field = find_field(sample, AUDIO_FIELDS, skips, "no audio file in sample")
    if field is None:
        return None
    try:
        audio, rate = sf.read(io.BytesIO(sample[field]), dtype="float32")
        meta = json.loads(sample["json"]) if "json" in sample else {}
        labels = np.load(io.BytesIO(sample["labels.npy"])) if "labels.npy" in sample else None
    except Exception:  # a corrupt sample must never stop a long run: count it and go on
        skips.skip("unreadable audio or metadata", key)
        return None
    if sample_rate is not None and rate != sample_rate:
        skips.skip(f"sample rate {rate} Hz, expected {sample_rate}", key)
        return None
    try:
        wav = check_finite(audio if audio.ndim == 1 else audio.mean(axis=1), key)  # shards are mono; others mixed
    except NonFiniteAudio:
        skips.skip("non-finite samples (NaN or Inf)", key)
        return None
    return {
        "key": key,
        FIELD: wav,
        "sample_rate": rate,
        "speaker": str(meta.get("speaker", "")),
        "utterance": meta.get("utterance", key),
        "labels": labels,
    }


def audio_stream(config: AudioDataConfig, train: bool, start: int = 0, windows: bool = True, *, sample_rate: int,
                 hop: int, segment: int = 0) -> Stream:
    """Training: endless shuffled windows. Evaluation (train=False): each sample once across ranks and workers,
    windows from offset 0, or whole utterances (padded, with "lengths") when windows=False. `sample_rate` and
    `hop` (samples per frame) are the model's; `start` (a batch index) and `segment` as in Stream."""
    if config.window % hop:
        raise ValueError(f"window {config.window} must be a multiple of the model's hop {hop} so labels stay aligned")
    label_step = frame_samples(sample_rate)
    augmenting = train and config.augment.enabled
    augment = AugmentStage(config.augment, sample_rate, FIELD, TARGET_FIELD) if augmenting else None
    return Stream(
        decode=functools.partial(decode_audio, sample_rate=sample_rate),
        field=FIELD,
        target_field=TARGET_FIELD,
        window=config.window if windows else None,
        quantum=math.lcm(hop, label_step),  # window offsets keep model frames and 10 ms labels aligned
        label_step=label_step,
        group=config.group,
        shuffle_samples=config.shuffle_samples,
        shuffle_items=config.shuffle_windows,
        transform=augment,
        **config.stream_args(train, start, segment),
    )

