"""A recipe: YAML (+ `--set` overrides) -> PretrainConfig -> the method, its data loaders and a Trainer run.

    config = load_config("recipes/demo/cpc.yaml", ["optim.lr=3e-4"])
    pretrain(config)                       # what `cpc pretrain` runs
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

import torch

from cpc import config as configs
from cpc.data.audio import AudioDataConfig, audio_stream
from cpc.data.images import ImageDataConfig, TwoViews, image_stream
from cpc.data.shards import resolve_shards
from cpc.data.stages import Stream, loader
from cpc.data.video import VideoDataConfig, video_stream
from cpc.methods import METHODS, BarlowTwinsConfig, BYOLConfig, CPCConfig, Method, MoCoConfig, SimCLRConfig, cpc_preset
from cpc.train.optim import OptimConfig
from cpc.train.trainer import Trainer, TrainConfig

DATA_CONFIGS = {"audio": AudioDataConfig, "video": VideoDataConfig, "images": ImageDataConfig}


@dataclass
class PretrainConfig:
    method: str = "cpc"  # a key of cpc.methods.METHODS; its section below configures it
    cpc_preset: str = "base"  # "paper", "base", "small" or "video": the defaults that the `cpc:` section overrides
    cpc: CPCConfig = field(default_factory=CPCConfig)
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
    moco: MoCoConfig = field(default_factory=MoCoConfig)
    byol: BYOLConfig = field(default_factory=BYOLConfig)
    barlow_twins: BarlowTwinsConfig = field(default_factory=BarlowTwinsConfig)
    # The data section's keys follow what the method reads: AudioDataConfig, VideoDataConfig (cpc with
    # model.modality video) or ImageDataConfig (the image methods).
    data: Union[AudioDataConfig, VideoDataConfig, ImageDataConfig] = field(default_factory=AudioDataConfig)
    val_shards: str = ""  # held-out shards for validation; empty: no validation
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(path: str | Path | None = None, overrides: list[str] = (), data: dict | None = None) -> PretrainConfig:
    """Recipe YAML (or a dict) + `--set` overrides -> PretrainConfig, the CPC preset applied first."""
    tree = configs.merge(configs.read_yaml(path) if path is not None else dict(data or {}),
                         configs.parse_overrides(list(overrides)))
    cpc_section, data_section = tree.pop("cpc", {}), tree.pop("data", {})
    config = configs.from_dict(PretrainConfig, tree)
    if config.method not in METHODS:
        raise configs.ConfigError(f"unknown method {config.method!r}; choose one of {sorted(METHODS)}")
    try:
        base = cpc_preset(config.cpc_preset)
    except ValueError as error:
        raise configs.ConfigError(f"cpc_preset: {error}") from None
    config = replace(config, cpc=configs.from_dict(CPCConfig, cpc_section, base=base, where="cpc"))
    return replace(config, data=configs.from_dict(DATA_CONFIGS[data_kind(config)], data_section, where="data"))


def method_config(config: PretrainConfig):
    """The section of the chosen method (e.g. config.cpc)."""
    return getattr(config, config.method)


def data_kind(config: PretrainConfig) -> str:
    """What the method reads: "audio", "video" or "images"."""
    return METHODS[config.method].data_kind(method_config(config))


def build_method(config: PretrainConfig) -> Method:
    section = method_config(config)
    if isinstance(section, BYOLConfig) and not section.total_steps:
        section = replace(section, total_steps=config.train.steps)
    return METHODS[config.method].method(section)


def data_stream(config: PretrainConfig, shards, train: bool, start: int = 0, segment: int = 0) -> Stream:
    """The stream of the run's data kind over `shards`: endless shuffled windows for training, from batch index
    `start` on, its randomness restarting every `segment` batches (the trainer's checkpoint interval, so a resumed
    run reads what the uninterrupted run read); for evaluation every sequence's windows once, ungrouped. Audio is
    read at the model's sample rate and frame hop."""
    data = replace(config.data, shards=shards)
    position = dict(start=start, segment=segment)
    kind = data_kind(config)
    if kind == "video":
        return video_stream(data, train=train, **position)
    if kind == "images":
        views = TwoViews(data.views or METHODS[config.method].method.views, data.size, data.blur,
                         data.jitter_strength)
        return image_stream(data, views, train=train, **position)
    model = config.cpc.model
    return audio_stream(data if train else replace(data, group=None), train=train, sample_rate=model.sample_rate,
                        hop=model.hop, **position)


def default_workers() -> int:
    """DataLoader workers per rank when `data.num_workers` is unset: on CUDA, this rank's share of the CPU cores
    (one left for the training process itself), at most 8; on CPU 0, since workers compete with the step for
    the same cores (measured slower on 2 cores)."""
    if not torch.cuda.is_available():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    per_rank = cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, min(8, per_rank - 1))


def data_loader(config: PretrainConfig, shards, train: bool, start: int = 0,
                segment: int = 0) -> torch.utils.data.DataLoader:
    """`data_stream` in a DataLoader with the run's `data.num_workers` (the one worker setting; persistent
    workers, `data.prefetch` batches each)."""
    workers = default_workers() if config.data.num_workers is None else config.data.num_workers
    return loader(data_stream(config, shards, train, start, segment), workers, pin_memory=torch.cuda.is_available(),
                  prefetch=config.data.prefetch)


def pretrain(config: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, float]:
    """Train as the config says; errors in paths and settings surface before the first step."""
    resolve_shards(config.data.shards)  # a missing path fails here, naming it
    if config.val_shards:
        resolve_shards(config.val_shards)
    torch.manual_seed(config.train.seed)  # the same initial weights on every rank and in every rerun
    method = build_method(config)
    train_data = lambda start, segment: data_loader(config, config.data.shards, True, start, segment)
    val_data = (lambda: data_loader(config, config.val_shards, False)) if config.val_shards else None
    trainer = Trainer(method, train_data, config.optim, config.train, val_data, run_config=configs.to_dict(config))
    return trainer.fit(resume=resume, overwrite=overwrite)
