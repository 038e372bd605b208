"""The image stream for the baselines: `.jpg`/`.png` + `.cls` shards -> V augmented views per image -> batches
{"views": (B, V, C, H, W) float32, "targets": {"class": (B,)}}. The caller passes the view transform:
a callable PIL image -> list of V tensors (C, H, W), e.g. one torchvision v2 pipeline applied V times.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from cpc.data.shards import resolve_shards
from cpc.data.stages import SkipCounter, Stream

IMAGE_FIELDS = ("jpg", "jpeg", "png")


@dataclass
class ImageDataConfig:
    shards: str = ""
    batch_size: int = 256
    shuffle_samples: int = 2000
    num_workers: int = 0
    seed: int = 0


def decode_image(sample: dict[str, Any], skips: SkipCounter, transform: Callable) -> dict[str, Any] | None:
    from PIL import Image

    key = sample["__key__"]
    field = next((f for f in IMAGE_FIELDS if f in sample), None)
    if field is None:
        skips.skip("no image in sample", key)
        return None
    try:
        image = Image.open(io.BytesIO(sample[field])).convert("RGB")
        targets = {"class": int(sample["cls"])} if "cls" in sample else {}
    except Exception:  # a corrupt image must never stop a long run
        skips.skip("unreadable image or class", key)
        return None
    views = np.stack([np.asarray(view, dtype=np.float32) for view in transform(image)])
    return {"key": key, "views": views, "targets": targets, "speaker": "", "utterance": key, "labels": None}


def image_stream(config: ImageDataConfig, transform: Callable, train: bool, start: int = 0) -> Stream:
    """Training: endless shuffled images; evaluation: every image once across ranks and workers."""
    return Stream(
        resolve_shards(config.shards),
        functools.partial(decode_image, transform=transform),
        field="views",
        batch_size=config.batch_size,
        train=train,
        shuffle_samples=1,  # images are shuffled after decoding, where the buffer is per image
        shuffle_items=config.shuffle_samples,
        seed=config.seed,
        start=start,
    )
