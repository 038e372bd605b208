"""A recipe: YAML (+ `--set` overrides) -> PretrainConfig -> the method, its data loaders and a Trainer run.

    config = load_config("recipes/demo/cpc.yaml", ["optim.lr=3e-4"])
    pretrain(config)                       # what `cpc pretrain` runs
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Union

import torch

from cpc import config as configs
from cpc.data.audio import AudioDataConfig, audio_stream
from cpc.data.images import VIEW_RECIPES, ImageDataConfig, TwoViews, image_stream
from cpc.data.augment import check_augment_config
from cpc.data.mixing import expected_shares, parse_mix
from cpc.data.shards import resolve_shards
from cpc.data.stages import GROUPS, WORKER_KINDS, Stream, loader
from cpc.data.video import VideoDataConfig, video_stream
from cpc.devices import DEVICES
from cpc.methods import METHODS, BarlowTwinsConfig, BYOLConfig, CPCConfig, Method, MoCoConfig, SimCLRConfig, cpc_preset
from cpc.methods.cpc import POLICIES, REGRESSION_LOSSES
from cpc.models.autoregressive import AR_KINDS
from cpc.models.cpc import FRONTENDS, MODALITIES, REGRESSION_TARGETS, adapter_class
from cpc.models.encoders import NORMS
from cpc.models.heads import PREDICTOR_KINDS
from cpc.train.optim import OPTIMISERS, SCHEDULES, OptimConfig
from cpc.train.trainer import PRECISIONS, Trainer, TrainConfig

DATA_CONFIGS = {"audio": AudioDataConfig, "video": VideoDataConfig, "images": ImageDataConfig}


@dataclass
class PretrainConfig:
    method: str = "cpc"  # a key of cpc.methods.METHODS; its section below configures it
    # "paper", "base", "small", "logmel" or "video": the defaults that the `cpc:` section overrides
    cpc_preset: str = "base"
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
    """Recipe YAML (or a dict) + `--set` overrides -> PretrainConfig, the CPC preset applied first, then checked
    (`check`): a setting that cannot work fails here, naming where it was set."""
    recipe = configs.read_yaml(path) if path is not None else dict(data or {})
    tree = configs.merge(recipe, configs.parse_overrides(list(overrides)))
    cpc_section, data_section = tree.pop("cpc", {}), tree.pop("data", {})
    config = configs.from_dict(PretrainConfig, tree)
    if config.method not in METHODS:
        raise configs.ConfigError(f"unknown method {config.method!r}; choose one of {sorted(METHODS)}")
    try:
        base = cpc_preset(config.cpc_preset)
    except ValueError as error:
        raise configs.ConfigError(f"cpc_preset: {error}") from None
    config = replace(config, cpc=configs.from_dict(CPCConfig, cpc_section, base=base, where="cpc"))
    config = replace(config, data=configs.from_dict(DATA_CONFIGS[data_kind(config)], data_section, where="data"))
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


class Rules:
    """Checks over one config; a failure is a ConfigError `what (where it was set): how to fix it`."""

    def __init__(self, config: PretrainConfig, origin: Callable[[str], str]):
        self.config, self.origin = config, origin

    def value(self, key: str):
        node = self.config
        for part in key.split("."):
            node = getattr(node, part)
        return node

    def fail(self, keys: list[str], what: str, fix: str) -> None:
        where = ", ".join(dict.fromkeys(self.origin(k) for k in keys))
        raise configs.ConfigError(f"{what} ({where}): {fix}")

    def at_least(self, low: float, *keys: str) -> None:
        for key in keys:
            if self.value(key) is not None and not self.value(key) >= low:
                self.fail([key], f"{key} is {self.value(key)!r}", f"it must be >= {low}")

    def positive(self, *keys: str) -> None:
        for key in keys:
            if self.value(key) is not None and not self.value(key) > 0:
                self.fail([key], f"{key} is {self.value(key)!r}", "it must be > 0")

    def one_of(self, key: str, names) -> None:
        if self.value(key) not in names:
            self.fail([key], f"unknown {key} {self.value(key)!r}", f"choose one of {', '.join(map(str, names))}")


def check(config: PretrainConfig, origin: Callable[[str], str] = lambda key: "the config") -> None:
    """A ConfigError for the first setting that cannot work, before anything is built or read: counts and rates
    in range, names among the known ones, and the cross-field rules (a window of whole model frames, at least
    K + 1 of them). `origin(key)` says where a value was set."""
    rules = Rules(config, origin)
    rules.at_least(1, "data.batch_size", "data.prefetch", "data.open_shards", "train.steps", "train.checkpoint_every",
                   "train.log_every", "train.max_bad_steps", "optim.accumulate")
    rules.at_least(0, "data.num_workers", "train.keep_checkpoints", "train.validate_every",
                   "train.validation_batches", "train.malloc_trim_mb", "optim.warmup_steps", "optim.weight_decay")
    rules.positive("optim.lr", "optim.grad_clip", "train.dist_timeout_minutes")
    if not 0 <= config.optim.min_lr_ratio <= 1:
        rules.fail(["optim.min_lr_ratio"], f"optim.min_lr_ratio is {config.optim.min_lr_ratio!r}",
                   "it must lie in [0, 1]")
    rules.one_of("optim.name", OPTIMISERS)
    rules.one_of("optim.schedule", SCHEDULES)
    rules.one_of("train.precision", PRECISIONS)
    rules.one_of("train.device", DEVICES)
    rules.one_of("data.workers", WORKER_KINDS)
    if not config.train.out:  # "" would be the working directory
        rules.fail(["train.out"], "train.out is empty", "name the run's folder, e.g. --set train.out=runs/my_run")
    kind = data_kind(config)
    if kind == "images":
        rules.at_least(1, "data.size")
        rules.one_of("data.views", ("", *VIEW_RECIPES))
    else:
        check_cpc(config, kind, rules)


def check_cpc(config: PretrainConfig, kind: str, rules: Rules) -> None:
    """The CPC section's rules, and what each window must hold: whole model frames, at least K + 1 of them."""
    model = config.cpc.model
    rules.one_of("cpc.model.modality", MODALITIES)
    rules.one_of("cpc.model.frontend", FRONTENDS)
    rules.one_of("cpc.model.predictor.kind", PREDICTOR_KINDS)
    rules.one_of("cpc.model.regression_target", REGRESSION_TARGETS)
    rules.one_of("cpc.model.ar.kind", AR_KINDS)
    rules.one_of("cpc.infonce.policy", POLICIES)
    rules.one_of("cpc.regression_loss", REGRESSION_LOSSES)
    rules.at_least(1, "cpc.model.predictor.steps", "cpc.infonce.negatives", "cpc.model.ar.dim", "cpc.model.ar.layers")
    rules.positive("cpc.infonce.temperature")
    rules.at_least(0, "data.shuffle_samples", "data.shuffle_windows")
    try:  # what the input kind itself rules out (e.g. a log-mel front end with window statistics)
        inputs = adapter_class(model)
    except ValueError as error:
        what, _, fix = str(error).rpartition(": ")
        rules.fail(["cpc.model.frontend"], what or str(error), fix or "see docs/models.md")
    steps, window = model.predictor.steps, config.data.window
    if kind == "video":
        if window < steps + 1:
            rules.fail(["data.window", "cpc.model.predictor.steps"],
                       f"data.window {window} frames is too short for K = {steps} prediction steps "
                       "(cpc.model.predictor.steps)", f"use a window of at least {steps + 1} frames, or a smaller K")
        return
    rules.one_of("cpc.model.encoder.norm", NORMS)
    rules.one_of("data.group", GROUPS)
    if config.data.group == "source" and not config.data.mix:
        rules.fail(["data.group"], "data.group 'source' builds each batch from one corpus of data.mix, but there is "
                   "no data.mix", "give data.mix: [SHARDS=WEIGHT, ...], or another data.group")
    check_augment_config(config.data.augment, "data.augment")
    kernels, strides = model.encoder.kernels, model.encoder.strides
    if len(kernels) != len(strides) or not strides or min(kernels + strides) < 1:
        rules.fail(["cpc.model.encoder.kernels", "cpc.model.encoder.strides"],
                   f"encoder kernels {list(kernels)} and strides {list(strides)} do not pair up",
                   "give one kernel and one stride (each >= 1) per conv layer")
    hop = model.hop
    if window < 1 or window % hop:
        lower, upper = max(hop, window // hop * hop), (window // hop + 1) * hop
        rules.fail(["data.window"], f"data.window {window} must be a multiple of the model's hop {hop}",
                   f"use {lower} or {upper} samples (the hop is {inputs.hop_rule.format(model='cpc.model.')})")
    if window // hop < steps + 1:
        rules.fail(["data.window", "cpc.model.predictor.steps"],
                   f"data.window {window} holds {window // hop} frames of {hop} samples, too few for K = {steps} "
                   "prediction steps (cpc.model.predictor.steps)",
                   f"use a window of at least {(steps + 1) * hop} samples ({steps + 1} frames), or a smaller K")


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
                  prefetch=config.data.prefetch, kind=config.data.workers)


def pretrain(config: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict[str, float]:
    """Train as the config says; errors in paths and settings surface before the first step."""
    check(config)  # a config built in code gets the checks load_config gives a recipe
    mix = getattr(config.data, "mix", [])
    if not config.data.shards and not mix:
        raise configs.ConfigError("data.shards is not set (the recipe and --set leave it empty): point it at "
                                  "shards written by `cpc shards`, e.g. "
                                  "--set data.shards=datasets/synthetic_speech/sample/train")
    if mix:
        try:
            entries = parse_mix(mix)
        except ValueError as error:
            raise configs.ConfigError(f"data.mix: {error}") from None
        for spec, _ in entries:
            resolve_shards(spec)  # a missing path fails here, naming it
        shares = ", ".join(f"{spec} {share:.0%}" for (spec, _), share in zip(entries, expected_shares(entries)))
        print(f"training mixture (share of the audio time): {shares}")
    else:
        resolve_shards(config.data.shards)  # a missing path fails here, naming it
    if config.val_shards:
        resolve_shards(config.val_shards)
    torch.manual_seed(config.train.seed)  # the same initial weights on every rank and in every rerun
    try:
        method = build_method(config)
    except ValueError as error:  # the model and method constructors check the settings `check` does not know
        raise configs.ConfigError(f"{error} (the {config.method} section): change that setting") from None
    train_data = lambda start, segment: data_loader(config, config.data.shards, True, start, segment)
    val_data = (lambda: data_loader(config, config.val_shards, False)) if config.val_shards else None
    trainer = Trainer(method, train_data, config.optim, config.train, val_data, run_config=configs.to_dict(config))
    return trainer.fit(resume=resume, overwrite=overwrite)
