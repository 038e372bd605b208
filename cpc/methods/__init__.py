"""One class per objective, all with `training_step(batch) -> (loss, logs)`, `param_groups()`, `on_after_step`."""

from cpc.methods.base import Method, decay_groups
from cpc.methods.cpc import CPCConfig, CPCMethod, cpc_preset
