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
import torch

from cpc.data.stages import SkipCounter, Stream, StreamConfig, find_field

IMAGE_FIELDS = ("jpg", "jpeg", "png")


@dataclass
class ImageDataConfig(StreamConfig):
    batch_size: int = 256
    shuffle_samples: int = 2000
    size: int = 32  # view side in pixels
    views: str = ""  # "simclr" or "byol" augmentations; "": the method's own (see TwoViews)
    blur: bool = False  # Gaussian blur (off for 32x32 images, as the CIFAR recipes do)
    jitter_strength: float = 1.0  # SimCLR colour-jitter strength (0.5 on CIFAR)


def decode_image(sample: dict[str, Any], skips: SkipCounter, transform: Callable) -> dict[str, Any] | None:
    from PIL import Image

    key = sample["__key__"]
    field = find_field(sample, IMAGE_FIELDS, skips, "no image in sample")
    if field is None:
        return None
    try:
        image = Image.open(io.BytesIO(sample[field])).convert("RGB")
        targets = {"class": int(sample["cls"])} if "cls" in sample else {}
    except Exception:  # a corrupt image must never stop a long run
        skips.skip("unreadable image or class", key)
        return None
    views = np.stack([np.asarray(view, dtype=np.float32) for view in transform(image)])
    return {"key": key, "views": views, "targets": targets, "speaker": "", "utterance": key, "labels": None}


def image_stream(config: ImageDataConfig, transform: Callable, train: bool, start: int = 0,
                 segment: int = 0) -> Stream:
    """Training: endless shuffled images; evaluation: every image once across ranks and workers."""
    return Stream(
        decode=functools.partial(decode_image, transform=transform),
        field="views",
        shuffle_samples=1,  # images are shuffled after decoding, where the buffer is per image
        shuffle_items=config.shuffle_samples,
        **config.stream_args(train, start, segment),
    )


VIEW_RECIPES = ("simclr", "byol")


class TwoViews:
    """PIL image -> [view 1, view 2] float tensors (C, H, W) with the published augmentations (torchvision v2):
    random resized crop (scale 0.08-1), flip 0.5, colour jitter p 0.8, grayscale 0.2, then
    - "simclr" (SimCLR, MoCo v2): jitter 0.8/0.8/0.8/0.2 x `jitter_strength` (0.5 on CIFAR), blur p 0.5 on both;
    - "byol" (BYOL, Barlow Twins): jitter 0.4/0.4/0.2/0.1, blur p 1.0 / 0.1, solarize p 0 / 0.2 (asymmetric).
    Blur is off for small images (blur=False: 32x32 CIFAR recipes turn it off); grey inputs are made RGB first."""

    def __init__(self, recipe: str = "simclr", size: int = 32, blur: bool = False, jitter_strength: float = 1.0,
                 mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.25, 0.25, 0.25)):
        from torchvision.transforms import v2

        if recipe not in VIEW_RECIPES:
            raise ValueError(f"unknown view recipe {recipe!r}; choose one of {VIEW_RECIPES}")
        s = jitter_strength
        jitter = (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s) if recipe == "simclr" else (0.4, 0.4, 0.2, 0.1)
        blur_p = (0.5, 0.5) if recipe == "simclr" else (1.0, 0.1)
        solarize_p = (0.0, 0.0) if recipe == "simclr" else (0.0, 0.2)
        kernel = 2 * (size // 20) + 1  # ~10 % of the side, odd

        def pipeline(view: int):
            steps = [v2.ToImage(), v2.RGB(), v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
                     v2.RandomHorizontalFlip(), v2.RandomApply([v2.ColorJitter(*jitter)], p=0.8),
                     v2.RandomGrayscale(p=0.2)]
            if blur and blur_p[view] > 0:
                steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p[view]))
            if solarize_p[view] > 0:
                steps.append(v2.RandomSolarize(threshold=128, p=solarize_p[view]))
            steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
            return v2.Compose(steps)

        self.views = [pipeline(0), pipeline(1)]

    def __call__(self, image) -> list[torch.Tensor]:
        return [view(image) for view in self.views]


def evaluation_transform(size: int = 32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
    """The un-augmented view probes use: RGB, resized to size, normalised like the training views."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.RGB(), v2.Resize(size, antialias=True), v2.CenterCrop(size),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
