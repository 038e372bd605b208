"""The augmentation config and its check. AugmentConfig inherits the settings of every effect registered in
cpc.data.augment.effects, so its keys stay flat (`data.augment.past`, `pitch_prob`, `noise_snr_db`, ...) and a
new effect's settings join it with the effect's registry line. `AugmentConfig.check` walks the chain's own
settings and then each effect's: its probability and its `check`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cpc.data.augment.effects  # noqa: F401 - importing it registers the built-in effects
from cpc.data.augment.registry import EFFECTS, Effect, SettingChecks

COMBINES = ("chain", "one")


@dataclass
class WindowSettings:
    past: bool = False  # augment the window the context network c_t sees
    future: bool = False  # augment the window the target and negative frames z come from (independent draw)


@dataclass
class ChainSettings:
    # "chain": every effect fires on its own with its probability (as the CPC2 paper's combinations); "one": one
    # effect with probability > 0 is picked uniformly per window, then fires with its probability (as CPC_audio's
    # CPC_v2 CombinedTransforms, which applies one random effect of the list): ~1/4 of the chain's cost.
    combine: str = "chain"
    bank_seed: int = 0  # seeds the noise and RIR banks (the same in every worker); draws use the caller's rng


# A dataclass lists the fields of its last base first: this order gives past, future, the effects in chain order,
# then combine and bank_seed.
_SETTINGS = (ChainSettings, *[effect.Settings for effect in reversed(EFFECTS.values())], WindowSettings)


@dataclass
class AugmentConfig(*_SETTINGS):
    """What to augment and how. `past` and `future` both False (the default) is the identity; `past: true` alone
    is CPC2's best setup (pitch + additive noise + reverberation on the context input, clean targets). The
    effects' settings are documented with their Settings classes in cpc.data.augment.effects."""

    @property
    def enabled(self) -> bool:
        return (self.past or self.future) and any(effect.probability_of(self) > 0 for effect in self.effects())

    def effects(self) -> list[type[Effect]]:
        """The registered effects, in chain order; all of them, since the config must carry each one's settings."""
        for effect in EFFECTS.values():
            if not isinstance(self, effect.Settings):
                raise TypeError(f"the augmentation effect {effect.name!r} is registered but {type(self).__name__} "
                                f"lacks its settings: use a config class that also inherits {effect.Settings.__name__}")
        return list(EFFECTS.values())

    def check(self, where: str = "augment") -> None:
        """A ConfigError naming `where.key` and its valid range for the first value out of range."""
        rules = SettingChecks(self, where)
        effects = self.effects()
        for effect in effects:
            rules.probability(f"{effect.name}_prob")
        if self.combine not in COMBINES:
            rules.fail("combine", "choose 'chain' (every effect on its own) or 'one' (one effect per window)",
                       self.combine)
        for effect in effects:
            effect.check(self, rules)


def check_augment_config(config: AugmentConfig, where: str = "augment") -> None:
    """`config.check(where)`: a ConfigError naming the key and its valid range for the first value out of range."""
    config.check(where)

