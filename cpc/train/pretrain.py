"""`cpc pretrain`: a recipe (YAML -> PretrainConfig) becomes a method, data streams and a Trainer run;
`load_model` rebuilds the trained model from a checkpoint alone."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

import torch

from cpc import config as configs
from cpc.data.audio import AudioDataConfig, audio_stream
from cpc.data.shards import resolve_shards
from cpc.data.stages import Stream, loader
from cpc.data.video import VideoDataConfig, video_stream
from cpc.data.images import ImageDataConfig, TwoViews, image_stream
from cpc.methods import (BYOL, BarlowTwins, BarlowTwinsConfig, BYOLConfig, Method, MoCo, MoCoConfig, SimCLR,
                         SimCLRConfig)
from cpc.methods.cpc import CPCConfig, CPCMethod, cpc_preset
from cpc.train.optim import OptimConfig
from cpc.train.trainer import Trainer, TrainConfig

IMAGE_METHODS = {  # name -> (config class, method class, default view augmentations)
    "simclr": (SimCLRConfig, SimCLR, "simclr"),
    "moco": (MoCoConfig, MoCo, "simclr"),
    "byol": (BYOLConfig, BYOL, "byol"),
    "barlow_twins": (BarlowTwinsConfig, BarlowTwins, "byol"),
}
METHODS = ("cpc", *IMAGE_METHODS)


@dataclass
class PretrainConfig:
    method: str = "cpc"
    cpc_preset: str = "base"  # "paper", "base" or "small": the defaults that the `cpc:` section overrides
    cpc: CPCConfig = field(default_factory=CPCConfig)
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
    moco: MoCoConfig = field(default_factory=MoCoConfig)
    byol: BYOLConfig = field(default_factory=BYOLConfig)
    barlow_twins: BarlowTwinsConfig = field(default_factory=BarlowTwinsConfig)
    # The data section's keys follow the modality: AudioDataConfig, VideoDataConfig for cpc.model.modality video,
    # ImageDataConfig for the image methods.
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
        raise configs.ConfigError(f"unknown method {config.method!r}; choose one of {METHODS}")
    try:
        base = cpc_preset(config.cpc_preset)
    except ValueError as error:
        raise configs.ConfigError(f"cpc_preset: {error}") from None
    config = replace(config, cpc=configs.from_dict(CPCConfig, cpc_section, base=base, where="cpc"))
    data_config = DATA_CONFIGS[modality(config)]
    return replace(config, data=configs.from_dict(data_config, data_section, where="data"))


DATA_CONFIGS = {"audio": AudioDataConfig, "video": VideoDataConfig, "images": ImageDataConfig}


def modality(config: PretrainConfig) -> str:
    """What the method reads: "audio", "video" or "images"."""
    return "images" if config.method in IMAGE_METHODS else config.cpc.model.modality


def data_stream(config: PretrainConfig, shards, train: bool, start: int = 0) -> Stream:
    """The stream of the run's modality over `shards`: endless shuffled windows for training; for evaluation
    every sequence's windows once, ungrouped."""
    data = replace(config.data, shards=shards)
    if modality(config) == "video":
        return video_stream(data, train=train, start=start)
    if modality(config) == "images":
        views = TwoViews(data.views or IMAGE_METHODS[config.method][2], data.size, data.blur, data.jitter_strength)
        return image_stream(data, views, train=train, start=start)
    return audio_stream(data if train else replace(data, group=None), train=train, start=start)


def build_method(config: PretrainConfig) -> Method:
    if config.method in IMAGE_METHODS:
        method_config = getattr(config, config.method)
        if isinstance(method_config, BYOLConfig) and not method_config.total_steps:
            method_config = replace(method_config, total_steps=config.train.steps)
        return IMAGE_METHODS[config.method][1](method_config)
    method = CPCMethod(config.cpc)
    method.sample_rate = getattr(config.data, "sample_rate", method.sample_rate)
    return method


def pretrain(config: PretrainConfig, resume: bool = False) -> dict[str, float]:
    """Train as the config says; errors in paths and settings surface before the first step."""
    resolve_shards(config.data.shards)  # a missing path fails here, naming it
    torch.manual_seed(config.train.seed)  # the same initial weights on every rank and in every rerun
    method = build_method(config)
    pin = torch.cuda.is_available()  # page-locked batches copy to the GPU asynchronously
    workers = config.train.num_workers
    train_data = lambda start: loader(data_stream(config, config.data.shards, True, start), workers, pin_memory=pin)
    val_data = None
    if config.val_shards:
        resolve_shards(config.val_shards)
        val_data = lambda: loader(data_stream(config, config.val_shards, False), workers, pin_memory=pin)
    trainer = Trainer(method, train_data, config.optim, config.train, val_data, run_config=configs.to_dict(config))
    return trainer.fit(resume=resume)


def load_model(path: str | Path, weights: bool = True):
    """A checkpoint file (or the folder of a run: its newest checkpoint) -> the trained model (CPCModel, or an image
    method's backbone), in eval mode;
    weights=False gives the same architecture freshly initialised (seed 0), for random-init baselines."""
    from cpc.train import checkpoint

    state = checkpoint.read(path)
    if not state.get("config"):
        raise ValueError(f"checkpoint {path} carries no config; it was not written by cpc's trainer")
    torch.manual_seed(0)
    method = build_method(load_config(data=state["config"]))
    if weights:
        method.load_state_dict(state["model"])
    return (method.model if isinstance(method, CPCMethod) else method.backbone).eval()
