"""One class per objective, all with `training_step(batch) -> (loss, logs)`, `param_groups()`, and momentum pairs
for EMA methods. `METHODS` is the registry a recipe's `method:` key chooses from:
name -> (config class, method class, data kind: config -> "audio" | "video" | "images")."""

from typing import Any, Callable, NamedTuple

from cpc.methods.base import Method, decay_groups
from cpc.methods.cpc import CPCConfig, CPCMethod, cpc_preset
from cpc.methods.barlow_twins import BarlowTwins, BarlowTwinsConfig
from cpc.methods.byol import BYOL, BYOLConfig
from cpc.methods.image import ImageMethod, ImageMethodConfig, load_backbone
from cpc.methods.moco import MoCo, MoCoConfig
from cpc.methods.simclr import SimCLR, SimCLRConfig


class Registered(NamedTuple):
    config: type
    method: type[Method]
    data_kind: Callable[[Any], str]


METHODS: dict[str, Registered] = {
    name: Registered(config, method, method.data_kind)
    for name, (config, method) in {
        "cpc": (CPCConfig, CPCMethod),
        "simclr": (SimCLRConfig, SimCLR),
        "moco": (MoCoConfig, MoCo),
        "byol": (BYOLConfig, BYOL),
        "barlow_twins": (BarlowTwinsConfig, BarlowTwins),
    }.items()
}
