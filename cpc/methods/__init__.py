"""One class per objective, all with `training_step(batch) -> (loss, logs)`, `param_groups()`, `on_after_step`."""

from cpc.methods.base import Method, decay_groups
from cpc.methods.cpc import CPCConfig, CPCMethod, cpc_preset
from cpc.methods.barlow_twins import BarlowTwins, BarlowTwinsConfig
from cpc.methods.byol import BYOL, BYOLConfig
from cpc.methods.image import ImageMethod, ImageMethodConfig, load_backbone
from cpc.methods.moco import MoCo, MoCoConfig
from cpc.methods.simclr import SimCLR, SimCLRConfig
