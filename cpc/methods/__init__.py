"""One class per objective, all with `training_step(batch) -> (loss, logs)`, `param_groups()`, and momentum pairs
for EMA methods. `METHODS` is the registry a recipe's `method:` key chooses from: name -> its config class, method
class, data kind, check, build and stream options (see `Registered`); adding a method is its module plus one line."""

from typing import Any, Callable, NamedTuple

from cpc.config import Rules

from cpc.methods.base import Method, decay_groups
from cpc.methods.cpc import CPCConfig, CPCMethod, cpc_preset
from cpc.methods.barlow_twins import BarlowTwins, BarlowTwinsConfig
from cpc.methods.byol import BYOL, BYOLConfig
from cpc.methods.image import ImageMethod, ImageMethodConfig, load_backbone
from cpc.methods.moco import MoCo, MoCoConfig
from cpc.methods.simclr import SimCLR, SimCLRConfig


class Registered(NamedTuple):
    """A method as a recipe sees it; its section's YAML key is the method's name."""

    config: type  # the section's dataclass
    method: type[Method]
    data_kind: Callable[[Any], str]  # section -> a key of cpc.data.kinds.DATA_KINDS
    check: Callable[[Any, Rules, Rules], None] | None  # (section, its rules, the data section's rules) or none
    build: Callable[[Any, int], Method]  # (section, the run's optimiser steps) -> the method
    stream_options: Callable[[Any], dict]  # section -> what the data kind's stream needs from the method
    preset: Callable[[str], Any] | None = None  # the run's cpc_preset name -> the section's defaults


def entry(config: type, method: type[Method], preset: Callable[[str], Any] | None = None) -> Registered:
    """The registry line of a method whose config may define `check` and whose class defines the rest."""
    return Registered(config, method, method.data_kind, getattr(config, "check", None), method.build,
                      method.stream_options, preset)


METHODS: dict[str, Registered] = {
    "cpc": entry(CPCConfig, CPCMethod, preset=cpc_preset),
    "simclr": entry(SimCLRConfig, SimCLR),
    "moco": entry(MoCoConfig, MoCo),
    "byol": entry(BYOLConfig, BYOL),
    "barlow_twins": entry(BarlowTwinsConfig, BarlowTwins),
}
