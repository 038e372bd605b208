"""A method and a data kind registered from outside the package (this module alone) are checked, built and trained
by the recipe like the built-in ones; each shard list, mixture and augmentation config is resolved once per run."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch

from cpc.config import ConfigError, Rules
from cpc.data import audio, mixing, stages
from cpc.data.audio import AudioDataConfig
from cpc.data.kinds import DATA_KINDS, DataKind, run_audio_stream
from cpc.methods import METHODS, Method, entry
from cpc.models.cpc import CPCModel, cpc_small_config
from cpc.recipe import build_method, data_kind, load_config, pretrain

SAMPLE = "datasets/synthetic_speech/sample"


@dataclass
class ToyConfig:
    channels: int = 8
    steps_seen: int = 0  # filled by build: the run's length

    def check(self, rules: Rules, data: Rules) -> None:
        rules.at_least(1, "channels")
        if data.value("window") % 160:
            rules.fail([data.key("window")], f"{data.key('window')} is not whole 10 ms frames", "use a multiple of 160")


class ToyMethod(Method):
    """A small CPCModel whose context predicts the next encoder frame by mean squared error."""

    @classmethod
    def data_kind(cls, config: ToyConfig) -> str:
        return "toy_audio"

    @classmethod
    def stream_options(cls, config: ToyConfig) -> dict:
        return {"sample_rate": 16000, "hop": 160}

    @classmethod
    def build(cls, config: ToyConfig, steps: int) -> "ToyMethod":
        return cls(replace(config, steps_seen=steps))

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        model = cpc_small_config()
        model = replace(model, encoder=replace(model.encoder, channels=config.channels),
                        ar=replace(model.ar, dim=config.channels), predictor=replace(model.predictor, kind="none"))
        self.model = CPCModel(model)
        self.head = torch.nn.Linear(config.channels, config.channels)

    def training_step(self, batch):
        out = self.model(batch["wav"] * batch["gain"][:, None])
        loss = torch.nn.functional.mse_loss(self.head(out["c"][:, :-1]), out["z"][:, 1:].detach())
        return loss, {"loss": loss.detach()}


@dataclass
class ToyDataConfig(AudioDataConfig):
    gain: float = 1.0  # every window scaled by it


def toy_stream(data: ToyDataConfig, train: bool, start: int = 0, segment: int = 0, **options):
    stream = run_audio_stream(data, train, start, segment, **options)
    return GainStream(stream, data.gain)


class GainStream(torch.utils.data.IterableDataset):
    def __init__(self, stream, gain: float):
        self.stream, self.gain = stream, gain

    def __iter__(self):
        for batch in self.stream:
            yield {**batch, "gain": torch.full((len(batch["wav"]),), self.gain)}


def check_toy_data(data: ToyDataConfig, rules: Rules) -> None:
    data.check(rules)
    rules.positive("gain")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, "toy", entry(ToyConfig, ToyMethod))
    monkeypatch.setitem(DATA_KINDS, "toy_audio", DataKind(ToyDataConfig, check_toy_data, toy_stream))


TOY = ["method=toy", f"data.shards={SAMPLE}/train", "data.window=3200", "data.batch_size=4", "val_shards=",
       "train.steps=2", "train.checkpoint_every=2", "train.log_every=1", "train.progress=false"]


def test_a_method_registered_from_outside_is_checked_by_its_own_rules(toy, tmp_path):
    config = load_config(overrides=TOY + ["toy.channels=12", "data.gain=0.5"])
    assert config.toy == ToyConfig(channels=12) and isinstance(config.data, ToyDataConfig)
    assert config.data.gain == 0.5 and data_kind(config) == "toy_audio"
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=TOY + ["toy.channels=0"])
    assert str(caught.value) == "toy.channels is 0 (--set toy.channels=0): it must be >= 1"
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=TOY + ["data.window=3000"])
    assert str(caught.value) == "data.window is not whole 10 ms frames (--set data.window=3000): use a multiple of 160"
    with pytest.raises(ConfigError, match=r"^data.gain is -1.0 \(--set data.gain=-1\): it must be > 0$"):
        load_config(overrides=TOY + ["data.gain=-1"])
    with pytest.raises(ConfigError, match=r"^data.batch_size is 0 \(--set data.batch_size=0\): it must be >= 1$"):
        load_config(overrides=TOY + ["data.batch_size=0"])  # the shared stream rules come with the data kind


def test_a_method_registered_from_outside_trains_through_pretrain(toy, tmp_path):
    config = load_config(overrides=TOY + [f"train.out={tmp_path / 'run'}"])
    assert build_method(config).config.steps_seen == 2  # its entry builds it for the run's length
    result = pretrain(config)
    assert torch.isfinite(torch.tensor(result["loss"])) and result["loss"] > 0
    assert (tmp_path / "run" / "step-00000002.pt").is_file()  # the checkpoint exports the toy's CPCModel


def counting(monkeypatch, module, name, calls):
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args[0] if args else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_each_shard_list_mixture_and_augment_config_is_resolved_once_per_run(monkeypatch, tmp_path):
    resolved, parsed, augment_checks = [], [], []
    for module in (stages, mixing):
        counting(monkeypatch, module, "resolve_shards", resolved)
    counting(monkeypatch, stages, "parse_mix", parsed)
    counting(monkeypatch, audio, "check_augment_config", augment_checks)
    train, test = f"{SAMPLE}/train", f"{SAMPLE}/test"
    config = load_config("recipes/demo/cpc.yaml", ["cpc_preset=small", "data.window=3200", "data.batch_size=4",
                                                   f"data.mix=[{train}=1, {test}=1]", f"val_shards={test}",
                                                   "train.steps=2", "train.checkpoint_every=2",
                                                   "train.validate_every=2", "train.validation_batches=1",
                                                   "train.progress=false", f"train.out={tmp_path / 'run'}"])
    pretrain(config)
    assert sorted(resolved) == sorted([train, test, test])  # the two corpora of the mixture, and validation's
    assert len(parsed) == 1 and len(augment_checks) == 1
