"""Deterministic pieces for trainer tests: a CPC method with no random draws and no batch statistics."""

import torch

from cpc.data.synthetic import sinusoid_batch
from cpc.methods.cpc import CPCConfig, CPCMethod
from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModelConfig
from cpc.models.encoders import ConvEncoderConfig
from cpc.models.heads import PredictorConfig


def regression_method(seed: int = 0) -> CPCMethod:
    """Predictive coding of log-mel frames only: a mean loss with no sampling, so gradients are deterministic and
    the mean over equal shards of a batch equals the whole batch's."""
    torch.manual_seed(seed)
    model = CPCModelConfig(
        encoder=ConvEncoderConfig(channels=16, norm="channel"),
        ar=AutoregressiveConfig(kind="gru", dim=16),
        predictor=PredictorConfig(kind="none", steps=2),
        regression_target="logmel",
        n_mels=8,
        input_norm="window",  # what these tests were written with (the default then): fp16 overflow needs it
    )
    return CPCMethod(CPCConfig(model=model, infonce_weight=0.0))


def global_batches(count: int, batch: int = 4, samples: int = 1600):
    g = torch.Generator().manual_seed(123)
    return [{"wav": sinusoid_batch(batch, samples, generator=g)} for _ in range(count)]


def parameters(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
