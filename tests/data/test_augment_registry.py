"""The effect registry: an effect defined and registered here, in the test module alone, is checked with the
config, runs in the chain after the built-in effects and is applied by the stream stage to the field it is given."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from cpc.config import ConfigError, from_dict
from cpc.data.augment import (EFFECTS, AugmentConfig, AugmentStage, Augmenter, Effect, check_augment_config,
                              register_effect)

SR = 16000


@dataclass
class GainSettings:
    gain_prob: float = 1.0
    gain_factor: float = -0.5


class Gain(Effect):
    """Multiplies the rows that fire by gain_factor: easy to see in the output."""

    name, Settings = "gain", GainSettings

    @staticmethod
    def check(config, rules) -> None:
        rules.within("gain_factor", -4, 4, "expected -4 <= factor <= 4")

    def draw(self, count, samples, rng):
        return {"factor": np.full(count, self.config.gain_factor, dtype=np.float32)}

    def apply(self, rows, params):
        return rows * params["factor"][:, None]


@dataclass
class GainConfig(AugmentConfig, GainSettings):
    """AugmentConfig with the toy effect's settings, as a plug-in outside cpc.data.augment.effects writes it."""


@pytest.fixture
def gain_registered():
    register_effect(Gain)
    yield Gain
    del EFFECTS["gain"]


def only_gain(**changes) -> GainConfig:
    builtin_off = {f"{name}_prob": 0.0 for name in EFFECTS if name != "gain"}
    return GainConfig(**{"past": True, **builtin_off, **changes})


def windows(count=5, samples=800):
    rng = np.random.default_rng(0)
    return [{"key": f"w{i}", "audio": rng.uniform(0.1, 1, samples).astype(np.float32)} for i in range(count)]


def test_a_registered_toy_effect_is_applied_by_the_stage_to_its_field(gain_registered):
    assert list(EFFECTS)[-1] == "gain"  # joins the end of the chain
    stage = AugmentStage(only_gain(gain_factor=-0.5), SR, "audio", "audio_clean")
    clean = windows()
    out = list(stage(iter(clean), random.Random(0)))
    assert [item["key"] for item in out] == [item["key"] for item in clean]
    for item, original in zip(out, clean):
        assert np.array_equal(item["audio"], -0.5 * original["audio"])  # past augmented by the toy
        assert np.array_equal(item["audio_clean"], original["audio"])  # target left clean
    assert list(stage.augmenter.effects) == ["gain"]  # probability 0 builds no other effect


def test_the_toy_effect_runs_after_the_built_in_ones(gain_registered):
    config = only_gain(gain_factor=2.0, dropout_prob=1.0, dropout_ms=(10.0, 10.0))
    x = np.random.default_rng(1).uniform(0.1, 1, (4, 1600)).astype(np.float32)
    y = Augmenter(config, SR)(x, np.random.default_rng(0))
    for before, after in zip(x, y):
        kept = after != 0
        assert (~kept).sum() == 160  # 10 ms dropped
        assert np.array_equal(after[kept], 2.0 * before[kept])


@pytest.mark.parametrize("changes, message", [
    ({"gain_factor": 9.0}, r"^data\.augment\.gain_factor: expected -4 <= factor <= 4; got 9\.0$"),
    ({"gain_prob": 1.5}, r"^data\.augment\.gain_prob: a probability must lie in \[0, 1\]; got 1\.5$"),
])
def test_the_config_check_runs_the_toy_effects_check(gain_registered, changes, message):
    with pytest.raises(ConfigError, match=message):
        check_augment_config(only_gain(**changes), "data.augment")
    stage = AugmentStage(only_gain(**changes), SR, "audio", "audio_clean")
    with pytest.raises(ConfigError, match=message.replace("data\\.", "")):  # the worker checks again
        next(stage(iter(windows()), random.Random(0)))


def test_the_toy_settings_are_config_keys(gain_registered):
    config = from_dict(GainConfig, {"past": True, "gain_factor": 3}, where="data.augment")
    assert config.gain_factor == 3.0 and config.enabled
    assert not only_gain(gain_prob=0.0).enabled


def test_a_config_without_a_registered_effects_settings_fails_its_check(gain_registered):
    with pytest.raises(TypeError, match="effect 'gain' is registered but AugmentConfig lacks its settings"):
        AugmentConfig(past=True).check()


def test_registering_an_incomplete_or_misspelt_effect_fails_at_once():
    class Misspelt(Gain):
        name = "gian"  # its settings are gain_*

    class Twice(Gain):
        name = "pitch"

    class NoApply(Effect):
        name, Settings = "gain", GainSettings

        def draw(self, count, samples, rng):
            return {}

    with pytest.raises(TypeError, match=r"Misspelt.Settings must hold gian_prob and only gian_\* fields"):
        register_effect(Misspelt)
    with pytest.raises(ValueError, match="an augmentation effect named 'pitch' is already registered"):
        register_effect(Twice)
    with pytest.raises(TypeError, match="NoApply must define apply"):
        register_effect(NoApply)
    assert list(EFFECTS) == ["pitch", "noise", "reverb", "bandreject", "dropout"]  # nothing half-registered
