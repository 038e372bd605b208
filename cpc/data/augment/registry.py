"""The registry of augmentation effects and what an effect is. An effect is one class: its settings (a dataclass of
`<name>_*` fields, `<name>_prob` among them, which AugmentConfig inherits, so YAML keys stay flat:
`data.augment.pitch_prob`), a check of those settings, the banks it builds once from the config, a `draw` of
parameters for every row and an `apply` to the rows that fire. `register_effect` checks the class when it joins,
so a misspelt name or a missing probability fails on import, not in a worker mid-run. The built-in effects
register in cpc.data.augment.effects, before AugmentConfig is made from the registry; an effect registered later
(a plug-in, a test) runs with a config class that also inherits its Settings (the config check says so).

    @dataclass
    class GainSettings:
        gain_prob: float = 0.0
        gain_db: tuple[float, float] = (-6.0, 6.0)

    @register_effect
    class Gain(Effect):
        name, Settings = "gain", GainSettings

        @staticmethod
        def check(config, rules):
            rules.span("gain_db", -40, 40, " dB")

        def draw(self, count, samples, rng):
            return {"db": rng.uniform(*self.config.gain_db, count)}

        def apply(self, rows, params):
            return rows * (10 ** (params["db"] / 20)).astype(np.float32)[:, None]
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from cpc.config import ConfigError

EFFECTS: dict[str, type[Effect]] = {}  # name -> effect class, in the order the chain applies them


class Effect:
    """One effect of the chain, built per Augmenter (per worker) from the whole config; subclasses set `name` and
    `Settings` and define `draw` and `apply` (and `check` and `__init__` when they have more to check or build)."""

    name: ClassVar[str]
    Settings: ClassVar[type]

    def __init__(self, config: Any, sample_rate: int, bank: np.random.Generator):
        """`bank`: the generator seeded by config.bank_seed that every effect builds its fixed banks from, in
        registry order (so the banks are the same in every worker and on resume)."""
        self.config, self.sample_rate = config, sample_rate
        self.probability = self.probability_of(config)

    @classmethod
    def probability_of(cls, config: Any) -> float:
        """The chance that the effect fires on a row (its `<name>_prob` setting)."""
        return getattr(config, f"{cls.name}_prob")

    @staticmethod
    def check(config: Any, rules: SettingChecks) -> None:
        """Raise (through `rules`) for the first of this effect's settings out of range; `<name>_prob` is checked
        for every effect by the config."""

    def draw(self, count: int, samples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Parameters for all `count` rows (arrays of first dimension count), drawn whether or not a row fires, so
        the draws of later effects do not depend on which rows fire."""
        raise NotImplementedError

    def apply(self, rows: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """(rows, samples) float32 -> the same shape, with `params` cut to these rows."""
        raise NotImplementedError


def register_effect(effect: type[Effect]) -> type[Effect]:
    """Add `effect` to the end of the chain, after checking it is complete; returns it (usable as a decorator)."""
    name = getattr(effect, "name", "")
    if not (isinstance(name, str) and name.isidentifier() and name.islower()):
        raise TypeError(f"{effect.__name__}.name must be a lower-case identifier; got {name!r}")
    if name in EFFECTS:
        raise ValueError(f"an augmentation effect named {name!r} is already registered ({EFFECTS[name].__name__})")
    settings = getattr(effect, "Settings", None)
    if settings is None or not dataclasses.is_dataclass(settings):
        raise TypeError(f"{effect.__name__}.Settings must be a dataclass of its {name}_* settings")
    fields = [f.name for f in dataclasses.fields(settings)]
    if f"{name}_prob" not in fields or any(not f.startswith(f"{name}_") for f in fields):
        raise TypeError(f"{effect.__name__}.Settings must hold {name}_prob and only {name}_* fields; has {fields}")
    for method in ("draw", "apply"):
        if getattr(effect, method) is getattr(Effect, method):
            raise TypeError(f"{effect.__name__} must define {method}")
    EFFECTS[name] = effect
    return effect


class SettingChecks:
    """The checks an effect's settings use; each raises a ConfigError naming `where.key`, the valid range and the
    value, e.g. `data.augment.pitch_prob: a probability must lie in [0, 1]; got 1.5`."""

    def __init__(self, config: Any, where: str):
        self.config, self.where = config, where

    def fail(self, key: str, valid: str, value: Any) -> None:
        raise ConfigError(f"{self.where}.{key}: {valid}; got {value!r}")

    def probability(self, key: str) -> None:
        value = getattr(self.config, key)
        if not 0 <= value <= 1:
            self.fail(key, "a probability must lie in [0, 1]", value)

    def span(self, key: str, low: float, high: float, unit: str = "") -> None:
        """A [min, max] range inside [low, high]."""
        value = getattr(self.config, key)
        if len(value) != 2 or not low <= value[0] <= value[1] <= high:
            self.fail(key, f"expected [min, max] with {low}{unit} <= min <= max <= {high}{unit}", value)

    def within(self, key: str, low: float, high: float, valid: str) -> None:
        """low <= value <= high, else `valid` as the message."""
        value = getattr(self.config, key)
        if not low <= value <= high:
            self.fail(key, valid, value)
