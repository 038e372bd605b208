"""The spectral features a CPC model has to beat, on the model's frame grid: MFCC (13 + deltas + delta-deltas, the
phone-probe literature's 39) and log-mel (80 bands), both torchaudio transforms."""

from __future__ import annotations

import torch
from torch import nn

from cpc.models.encoders import LogMelFrames, SpectralFrames, mel_options

BASELINES = ("mfcc", "logmel")


class MfccFrames(SpectralFrames):
    """13 MFCCs of 40 log-mel bands + deltas + delta-deltas: (batch, samples) -> (batch, samples // hop, 39)."""

    def __init__(self, sample_rate: int, hop: int, window_seconds: float = 0.025):
        import torchaudio

        options = mel_options(sample_rate, hop, 40, window_seconds)
        mfcc = torchaudio.transforms.MFCC(options.pop("sample_rate"), n_mfcc=13, norm="ortho", log_mels=True,
                                          melkwargs=options)
        super().__init__(nn.Sequential(mfcc, WithDeltas(torchaudio.transforms.ComputeDeltas())), hop,
                         options["n_fft"], 39)


class WithDeltas(nn.Module):
    """(batch, coefficients, frames) -> (batch, 3 coefficients, frames): the values, deltas and delta-deltas."""

    def __init__(self, deltas: nn.Module):
        super().__init__()
        self.deltas = deltas

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.deltas(x)
        return torch.cat([x, delta, self.deltas(delta)], dim=1)


def baseline_frames(kind: str, sample_rate: int, hop: int) -> nn.Module:
    """The module for baseline `kind` ("mfcc" or "logmel"): (batch, samples) -> (batch, samples // hop, dim)."""
    if kind == "mfcc":
        return MfccFrames(sample_rate, hop)
    if kind == "logmel":
        return LogMelFrames(sample_rate, hop)
    raise ValueError(f"unknown baseline features {kind!r}; choose one of {BASELINES}")
