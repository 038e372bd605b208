"""CPCModel = g_enc + g_ar (+ prediction heads), and builders with the published configurations."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cpc.models.autoregressive import AutoregressiveConfig, build_autoregressive
from cpc.models.encoders import ConvEncoder, ConvEncoderConfig, LogMelFrames, standardize
from cpc.models.heads import PredictionHeads, PredictorConfig

REGRESSION_TARGETS = ("none", "z", "logmel")


@dataclass
class CPCModelConfig:
    encoder: ConvEncoderConfig = field(default_factory=ConvEncoderConfig)
    ar: AutoregressiveConfig = field(default_factory=AutoregressiveConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    # Predictive-coding regression head: predict future encoder frames "z" (detached) or "logmel" frames.
    regression_target: str = "none"
    n_mels: int = 80
    # Each input row to zero mean, unit variance: without it an untrained encoder outputs mostly its biases.
    standardize: bool = True


class CPCModel(nn.Module):
    """forward(wav (batch, samples)) -> {"z": (B, T, D_enc), "c": (B, T, D_ar), "pred": (B, T, K, D_enc), ...}."""

    def __init__(self, config: CPCModelConfig = CPCModelConfig()):
        super().__init__()
        if config.regression_target not in REGRESSION_TARGETS:
            raise ValueError(
                f"unknown regression_target {config.regression_target!r}; choose one of {REGRESSION_TARGETS}"
            )
        self.config = config
        self.encoder = ConvEncoder(config.encoder)
        self.ar = build_autoregressive(config.ar, self.encoder.dim)
        steps = config.predictor.steps
        self.predictor = None
        if config.predictor.kind != "none":
            self.predictor = PredictionHeads(
                config.ar.dim, self.encoder.dim, steps, config.predictor.kind, config.predictor.heads
            )
        self.logmel = LogMelFrames(n_mels=config.n_mels, hop=self.encoder.hop) if config.regression_target == "logmel" else None
        self.regressor = None
        if config.regression_target != "none":
            target_dim = self.encoder.dim if config.regression_target == "z" else config.n_mels
            self.regressor = PredictionHeads(config.ar.dim, target_dim, steps, "linear")

    @property
    def hop(self) -> int:
        """Samples per frame (160 = 10 ms at 16 kHz by default)."""
        return self.encoder.hop

    @property
    def steps(self) -> int:
        return self.config.predictor.steps

    def min_training_samples(self) -> int:
        """Shortest input that leaves at least one position with all K future frames: (K + 1) frames."""
        return (self.steps + 1) * self.hop

    @torch.no_grad()
    def features(self, wav: torch.Tensor, layer: str = "c") -> torch.Tensor:
        """Frame features: (samples,) -> (samples // hop, dim), or (batch, samples) -> (batch, frames, dim).
        Each row is standardised on its own; for batches of unequal lengths use cpc.features.extract_batch."""
        wav = torch.as_tensor(wav, dtype=torch.float32, device=next(self.parameters()).device)
        single = wav.dim() == 1
        batch = wav[None] if single else wav
        if self.config.standardize:
            batch = standardize(batch)
        z = self.encoder(batch)
        c, _ = self.ar(z)
        out = select_layer(z, c, layer)
        return out[0] if single else out

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        if wav.dim() != 2:
            raise ValueError(f"CPCModel expects a waveform of shape (batch, samples); got shape {tuple(wav.shape)}")
        if self.config.standardize:
            wav = standardize(wav)
        z = self.encoder(wav)
        c, _ = self.ar(z)
        out = {"z": z, "c": c}
        if self.predictor is not None:
            out["pred"] = self.predictor(c)
        if self.regressor is not None:
            out["regression"] = self.regressor(c)
            out["regression_target"] = z.detach() if self.logmel is None else self.logmel(wav)
        return out


FEATURE_LAYERS = ("z", "c", "both")


def check_layer(layer: str) -> None:
    if layer not in FEATURE_LAYERS:
        raise ValueError(f"unknown feature layer {layer!r}; choose one of {FEATURE_LAYERS} (z: encoder, c: context)")


def select_layer(z: torch.Tensor, c: torch.Tensor, layer: str) -> torch.Tensor:
    """Encoder frames z, context c, or both concatenated along the feature axis."""
    check_layer(layer)
    return {"z": z, "c": c, "both": torch.cat([z, c], dim=-1)}[layer]


def cpc_paper_config() -> CPCModelConfig:
    """Oord et al. 2018: 512 channels, BatchNorm, GRU 256, linear W_k, K = 12."""
    return CPCModelConfig(
        encoder=ConvEncoderConfig(channels=512, norm="batch"),
        ar=AutoregressiveConfig(kind="gru", dim=256),
        predictor=PredictorConfig(kind="linear", steps=12),
    )


def cpc_base_config() -> CPCModelConfig:
    """facebookresearch CPC_audio's defaults, with one shared Transformer predictor instead of twelve."""
    return CPCModelConfig(
        encoder=ConvEncoderConfig(channels=256, norm="channel"),
        ar=AutoregressiveConfig(kind="lstm", dim=256),
        predictor=PredictorConfig(kind="transformer", steps=12),
    )


def cpc_small_config() -> CPCModelConfig:
    """A small model for tests and CPU demos: 64 channels, BatchNorm, GRU 64, K = 4.

    BatchNorm, not channel norm: on CPU-demo learning rates (1e-3) the per-frame channel norm let the small model
    collapse to one constant frame (loss exactly ln(N + 1)) within 100 steps; BatchNorm cannot output a constant.
    """
    return CPCModelConfig(
        encoder=ConvEncoderConfig(channels=64, norm="batch"),
        ar=AutoregressiveConfig(kind="gru", dim=64),
        predictor=PredictorConfig(kind="linear", steps=4),
    )


def cpc_paper() -> CPCModel:
    return CPCModel(cpc_paper_config())


def cpc_base() -> CPCModel:
    return CPCModel(cpc_base_config())


def cpc_small() -> CPCModel:
    return CPCModel(cpc_small_config())
