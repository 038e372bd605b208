"""The image stream for the baselines: `.jpg`/`.png` + `.cls` shards -> V augmented views per image -> batches
{"views": (B, V, C, H, W) float32, "targets": {"class": (B,)}}. The caller passes the view transform:
a callable PIL image -> list of V tensors (C, H, W), e.g. `TwoViews("simclr")`, which applies the view transforms
of a named recipe from the registry VIEWS (SimCLRViews, BYOLViews; `register_views` adds one).
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
    views: str = ""  # "simclr" or "byol" augmentations (a name in VIEWS); "": the method's own
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


def view_transform(size: int, jitter: tuple[float, float, float, float], blur_p: float = 0.0,
                   solarize_p: float = 0.0, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                   std: tuple[float, ...] = (0.25, 0.25, 0.25)):
    """One view's augmentation (torchvision v2): RGB, random resized crop (scale 0.08-1), flip 0.5, colour
    jitter p 0.8, grayscale 0.2, then Gaussian blur and solarize with their probabilities (0: left out)."""
    from torchvision.transforms import v2

    steps = [v2.ToImage(), v2.RGB(), v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
             v2.RandomHorizontalFlip(), v2.RandomApply([v2.ColorJitter(*jitter)], p=0.8), v2.RandomGrayscale(p=0.2)]
    if blur_p > 0:
        kernel = 2 * (size // 20) + 1  # ~10 % of the side, odd
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p))
    if solarize_p > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=solarize_p))
    return v2.Compose(steps + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class SimCLRViews:
    """SimCLR, MoCo v2: both views alike, jitter 0.8/0.8/0.8/0.2 x `jitter_strength` (0.5 on CIFAR), blur p 0.5."""

    name = "simclr"

    @staticmethod
    def transforms(size: int, blur: bool, jitter_strength: float, mean, std) -> list[Callable]:
        jitter = tuple(jitter_strength * j for j in (0.8, 0.8, 0.8, 0.2))
        return [view_transform(size, jitter, 0.5 if blur else 0.0, 0.0, mean, std) for _ in range(2)]


class BYOLViews:
    """BYOL, Barlow Twins: jitter 0.4/0.4/0.2/0.1; asymmetric blur p 1.0 / 0.1 and solarize p 0 / 0.2."""

    name = "byol"

    @staticmethod
    def transforms(size: int, blur: bool, jitter_strength: float, mean, std) -> list[Callable]:
        jitter = (0.4, 0.4, 0.2, 0.1)  # published without a strength knob
        return [view_transform(size, jitter, 1.0 if blur else 0.0, 0.0, mean, std),
                view_transform(size, jitter, 0.1 if blur else 0.0, 0.2, mean, std)]


VIEWS: dict[str, type] = {}  # recipe name -> views class (name, transforms(size, blur, jitter_strength, mean, std))


def register_views(views: type) -> type:
    """Add a named views class (usable as a decorator); `data.views` chooses among the registered names."""
    if views.name in VIEWS:
        raise ValueError(f"a view recipe named {views.name!r} is already registered ({VIEWS[views.name].__name__})")
    VIEWS[views.name] = views
    return views


register_views(SimCLRViews)
register_views(BYOLViews)


class TwoViews:
    """PIL image -> [view 1, view 2] float tensors (C, H, W): each view transform of the named recipe (VIEWS)
    applied once. Blur is off for small images (blur=False: 32x32 CIFAR recipes turn it off); grey inputs are
    made RGB first."""

    def __init__(self, recipe: str = "simclr", size: int = 32, blur: bool = False, jitter_strength: float = 1.0,
                 mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.25, 0.25, 0.25)):
        if recipe not in VIEWS:
            raise ValueError(f"unknown view recipe {recipe!r}; choose one of {tuple(VIEWS)}")
        self.views = VIEWS[recipe].transforms(size, blur, jitter_strength, mean, std)

    def __call__(self, image) -> list[torch.Tensor]:
        return [view(image) for view in self.views]


def evaluation_transform(size: int = 32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
    """The un-augmented view probes use: RGB, resized to size, normalised like the training views."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.RGB(), v2.Resize(size, antialias=True), v2.CenterCrop(size),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
