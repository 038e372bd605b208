"""A recipe: YAML (+ `--set` overrides) -> PretrainConfig -> the method, its data loaders and a Trainer run.

    config = load_config("recipes/demo/cpc.yaml", ["optim.lr=3e-4"])
    pretrain(config)                       # what `cpc pretrain` runs

The recipe knows no method, data kind or setting by name: the method registry (cpc.methods.METHODS) and the data
kinds (cpc.data.kinds.DATA_KINDS) carry each one's config, check and build, and `check` walks the sections.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from cpc import config as configs
from cpc.config import Rules
from cpc.data.audio import AudioDataConfig
from cpc.data.kinds import DATA_KINDS
from cpc.data.stages import ShardSource, Stream, StreamConfig, loader
from cpc.devices import DEVICES
from cpc.methods import METHODS, Method
from cpc.train.optim import OptimConfig
from cpc.train.trainer import PRECISIONS, Trainer, TrainConfig


@dataclass
class PretrainConfig:
    """What every run has; `config_class()` adds one section per registered method, under the method's name."""

    method: str = "cpc"  # a key of cpc.methods.METHODS; its section configures it
    # "paper", "base", "small", "logmel" or "video": the defaults that the `cpc:` section overrides
    cpc_preset: str = "base"
    # The data section's keys follow what the method reads (cpc.data.kinds.DATA_KINDS): AudioDataConfig,
    # VideoDataConfig (cpc with model.modality video) or ImageDataConfig (the image methods).
    data: StreamConfig = field(default_factory=AudioDataConfig)
    val_shards: str = ""  # held-out shards for validation; empty: no validation
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def config_class() -> type[PretrainConfig]:
    """PretrainConfig with a section per method registered now (`cpc:`, `simclr:`, ...), each its config's defaults."""
    return _with_sections(tuple((name, entry.config) for name, entry in METHODS.items()))


@functools.lru_cache(maxsize=None)
def _with_sections(sections: tuple[tuple[str, type], ...]) -> type[PretrainConfig]:
    fields = [(name, kind, field(default_factory=kind)) for name, kind in sections]
    return dataclasses.make_dataclass("PretrainConfig", fields, bases=(PretrainConfig,))


def load_config(path: str | Path | None = None, overrides: list[str] = (), data: dict | None = None) -> PretrainConfig:
    """Recipe YAML (or a dict) + `--set` overrides -> PretrainConfig, the CPC preset applied first, then checked
    (`check`): a setting that cannot work fails here, naming where it was set."""
    recipe = configs.read_yaml(path) if path is not None else dict(data or {})
    tree = configs.merge(recipe, configs.parse_overrides(list(overrides)))
    sections = {name: tree.pop(name, {}) for name in METHODS}
    data_section = tree.pop("data", {})
    config = configs.from_dict(config_class(), tree)
    if config.method not in METHODS:
        raise configs.ConfigError(f"unknown method {config.method!r}; choose one of {sorted(METHODS)}")
    for name, entry in METHODS.items():
        base = None
        if entry.preset is not None:
            try:
                base = entry.preset(config.cpc_preset)
            except ValueError as error:
                raise configs.ConfigError(f"cpc_preset: {error}") from None
        section = configs.from_dict(entry.config, sections[name], base=base, where=name)
        config = replace(config, **{name: section})
    kind = DATA_KINDS[data_kind(config)]
    config = replace(config, data=configs.from_dict(kind.config, data_section, where="data"))
    check(config, origins(path if path is not None else "the config", recipe, list(overrides), config.cpc_preset))
    return config


def origins(source: str | Path, recipe: dict, overrides: list[str], preset: str) -> Callable[[str], str]:
    """dotted key -> where its value came from: the `--set` that gave it, the recipe file, the CPC preset or the
    dataclass default."""
    given = configs.flatten(recipe)

    def origin(key: str) -> str:
        for override in reversed(overrides):
            name = override.partition("=")[0]
            if key == name or key.startswith(name + "."):
                return f"--set {override}"
        if any(key == k or key.startswith(k + ".") for k in given):
            return str(source)
        return f"cpc_preset {preset!r}" if key.startswith("cpc.") else "the default"

    return origin


def check(config: PretrainConfig, origin: Callable[[str], str] = lambda key: "the config") -> None:
    """A ConfigError for the first setting that cannot work, before anything is built or read: each section
    checked by its owner (the data kind, OptimConfig, the method's registry entry) and the run's own settings
    here. `origin(key)` says where a value was set."""
    rules = Rules(config, origin)
    data = rules.within("data")
    DATA_KINDS[data_kind(config)].check(config.data, data)
    config.optim.check(rules.within("optim"))
    check_train(rules.within("train"))
    entry = METHODS[config.method]
    if entry.check is not None:
        entry.check(method_config(config), rules.within(config.method), data)
    # Checked as it is now: pretrain() does not check the same config again.
    object.__setattr__(config, "_checked_as", configs.to_dict(config))


def check_train(rules: Rules) -> None:
    """The train section's rules: counts in range, names among the known ones, a run folder."""
    rules.at_least(1, "steps", "checkpoint_every", "log_every", "max_bad_steps")
    rules.at_least(0, "keep_checkpoints", "validate_every", "validation_batches", "malloc_trim_mb")
    rules.positive("dist_timeout_minutes")
    rules.one_of("precision", PRECISIONS)
    rules.one_of("device", DEVICES)
    if not rules.value("out"):  # "" would be the working directory
        rules.fail([rules.key("out")], f"{rules.key('out')} is empty",
                   f"name the run's folder, e.g. --set {rules.key('out')}=runs/my_run")


def method_config(config: PretrainConfig):
    """The section of the chosen method (e.g. config.cpc)."""
    return getattr(config, config.method)


def data_kind(config: PretrainConfig) -> str:
    """What the method reads: a key of cpc.data.kinds.DATA_KINDS ("audio", "video", "images")."""
    return METHODS[config.method].data_kind(method_config(config))


def build_method(config: PretrainConfig) -> Method:
    """The chosen method, built by its registry entry for a run of train.steps steps."""
    return METHODS[config.method].build(method_config(config), config.train.steps)


def data_stream(config: PretrainConfig, shards: str | list[str] | ShardSource, train: bool, start: int = 0,
                segment: int = 0) -> Stream:
    """The stream of the run's data kind over `shards` (a spec, or a ShardSource resolved once): endless
    shuffled windows for training, from batch index `start` on, its randomness restarting every `segment` batches
    (the trainer's checkpoint interval, so a resumed run reads what the uninterrupted run read); for evaluation
    every sequence's windows once, ungrouped. What the stream needs from the method (the model's sample rate and
    frame hop, the image views) comes from the method's registry entry."""
    entry = METHODS[config.method]
    options = entry.stream_options(method_config(config))
    return DATA_KINDS[data_kind(config)].stream(replace(config.data, shards=shards), train=train, start=start,
                                                segment=segment, **options)


def default_workers() -> int:
    """DataLoader workers per rank when `data.num_workers` is unset: on CUDA, this rank's share of the CPU cores
    (one left for the training process itself), at most 8; on CPU 0, since workers compete with the step for
    the same cores (measured slower on 2 cores)."""
    if not torch.cuda.is_available():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    per_rank = cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, min(8, per_rank - 1))


def data_loader(config: PretrainConfig, shards: str | list[str] | ShardSource, train: bool, start: int = 0,
                segment: int = 0) -> torch.utils.data.DataLoader:
    """`data_stream` in a DataLoader with the run's `data.num_workers` (the one worker setting; persistent
    workers, `data.prefetch` batches each)."""
    workers = default_workers() if config.data.num_workers is None else config.data.num_workers
    return loader(data_stream(config, shards, train, start, segment), workers, pin_memory=torch.cuda.is_available(),
                  prefetch=config.data.prefetch, kind=config.data.workers)


def pretrain(config: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, float]:
    """Train as the config says; errors in paths and settings surface before the first step."""
    if getattr(config, "_checked_as", None) != configs.to_dict(config):
        check(config)  # a config built or changed in code gets the checks load_config gives a recipe
    if not config.data.shards and not config.data.mix:
        raise configs.ConfigError("data.shards is not set (the recipe and --set leave it empty): point it at "
                                  "shards written by `cpc shards`, e.g. "
                                  "--set data.shards=datasets/synthetic_speech/sample/train")
    # Each shard list (and the mixture) is resolved once here, for the run: a missing path fails now, naming it.
    train_shards = config.data.source(train=True)
    if train_shards.shares:
        shares = ", ".join(f"{spec} {share:.0%}" for spec, share in train_shards.shares)
        print(f"training mixture (share of the audio time): {shares}")
    val_shards = replace(config.data, shards=config.val_shards).source(train=False) if config.val_shards else None
    torch.manual_seed(config.train.seed)  # the same initial weights on every rank and in every rerun
    try:
        method = build_method(config)
    except ValueError as error:  # the model and method constructors check the settings `check` does not know
        raise configs.ConfigError(f"{error} (the {config.method} section): change that setting") from None
    train_data = lambda start, segment: data_loader(config, train_shards, True, start, segment)
    val_data = (lambda: data_loader(config, val_shards, False)) if val_shards else None
    trainer = Trainer(method, train_data, config.optim, config.train, val_data, run_config=configs.to_dict(config))
    return trainer.fit(resume=resume, overwrite=overwrite)
