"""The video-frame training stream: clips stored as uint8 `.frames.npy` (T, H, W, C) (or numbered `.0000.jpg` frames) ->
windows of T frames -> batches {"frames": (B, T, H, W, C) uint8, "labels": per-frame ids?, "targets": clip ids?}.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from cpc.config import Rules
from cpc.data.stages import SkipCounter, Stream, StreamConfig


@dataclass
class VideoDataConfig(StreamConfig):
    batch_size: int = 16
    window: int = 16  # frames
    shuffle_samples: int = 100
    shuffle_windows: int = 1000

    def check(self, rules: Rules) -> None:
        """A ConfigError for the first setting of this video section (`rules`, e.g. data) that cannot work."""
        super().check(rules)
        rules.at_least(0, "shuffle_samples", "shuffle_windows")


def decode_video(sample: dict[str, Any], skips: SkipCounter) -> dict[str, Any] | None:
    """One shard sample -> {"key", "frames" uint8 (T, H, W, C), "labels" per-frame or None, "targets" dict}."""
    key = sample["__key__"]
    try:
        meta = json.loads(sample["json"]) if "json" in sample else {}
        if "frames.npy" in sample:
            frames = np.load(io.BytesIO(sample["frames.npy"]))
        else:
            from PIL import Image

            names = sorted(n for n in sample if re.fullmatch(r"\d+\.(jpg|jpeg|png)", n))
            if not names:
                skips.skip("no frames in sample", key)
                return None
            frames = np.stack([np.asarray(Image.open(io.BytesIO(sample[n])).convert("RGB")) for n in names])
        labels = np.load(io.BytesIO(sample["labels.npy"])) if "labels.npy" in sample else None
    except Exception:  # a corrupt clip must never stop a long run
        skips.skip("unreadable frames or metadata", key)
        return None
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.dtype != np.uint8:
        skips.skip(f"frames must be uint8 (T, H, W, C), got {frames.dtype} {frames.shape}", key)
        return None
    return {"key": key, "frames": frames, "labels": labels, "speaker": "", "utterance": key,
            "targets": {k: int(v) for k, v in meta.get("targets", {}).items()}}


def video_stream(config: VideoDataConfig, train: bool, start: int = 0, windows: bool = True,
                 segment: int = 0) -> Stream:
    """Training: endless shuffled windows of `window` frames. Evaluation: every clip once (windows from frame 0,
    or whole clips when windows=False)."""
    return Stream(
        decode=decode_video,
        field="frames",
        window=config.window if windows else None,
        quantum=1,
        shuffle_samples=config.shuffle_samples,
        shuffle_items=config.shuffle_windows,
        **config.stream_args(train, start, segment),
    )
