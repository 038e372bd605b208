"""Encoders g_enc: raw audio -> one vector per frame.

`ConvEncoder` is the strided 1-D convolution stack of CPC. Its input is padded once, at the signal's edges, by
exactly enough that an input of S samples gives ``S // hop`` frames and frame t is centred on samples
``[hop*t, hop*t + hop)``; no layer pads on its own. That makes frame counts line up with 10 ms alignments and
makes chunked (streaming) encoding equal whole-signal encoding, because zeros only ever enter at the true edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ConvEncoderConfig:
    channels: int = 512
    kernels: tuple[int, ...] = (10, 8, 4, 4, 4)
    strides: tuple[int, ...] = (5, 4, 2, 2, 2)
    norm: str = "batch"  # "channel" (per-frame LayerNorm over channels), "batch", "instance" or "none"


NORMS = ("channel", "batch", "instance", "none")


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each frame, with a learnable affine, for (batch, channels, 1, time) tensors
    in channels_last memory: the permuted view is contiguous, so the fused kernel runs with no copy."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "channel":
        return ChannelNorm(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":  # over time, per channel: the height axis has size 1
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown encoder norm {kind!r}; choose one of {NORMS}")


def receptive_field(kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Number of input samples one output frame sees."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * jump
        jump *= stride
    return field


class ConvEncoder(nn.Module):
    """Strided 1-D conv stack: waveform (batch, samples) -> frames (batch, samples // hop, channels)."""

    def __init__(self, config: ConvEncoderConfig = ConvEncoderConfig()):
        super().__init__()
        if len(config.kernels) != len(config.strides):
            raise ValueError(
                f"encoder kernels {config.kernels} and strides {config.strides} must have the same length"
            )
        self.config = config
        self.hop = math.prod(config.strides)
        self.field = receptive_field(config.kernels, config.strides)
        # Pad (field - hop) samples in all, split so frame t is centred on its own hop-sized window.
        pad = self.field - self.hop
        self.pad_left = (self.field - self.hop) // 2
        self.pad_right = pad - self.pad_left
        # 1-D convolutions run as (1, k) Conv2d over (batch, channels, 1, time) in channels_last memory: oneDNN
        # (and cuDNN) are fastest in that layout, the channel norm needs no transposes, and the output is already
        # (batch, time, channels). Measured on 2 CPU cores, 256 channels, forward + backward of 8 x 20480 samples:
        # 371 ms vs 559 ms with Conv1d + channel norm, 284 ms vs 364 ms with BatchNorm.
        layers: list[nn.Module] = []
        in_channels = 1
        for kernel, stride in zip(config.kernels, config.strides):
            layers += [
                nn.Conv2d(in_channels, config.channels, (1, kernel), (1, stride), bias=config.norm == "none"),
                make_norm(config.norm, config.channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = config.channels
        self.layers = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.dim = config.channels

    def num_frames(self, samples: int) -> int:
        """Exact output length for an input of `samples` samples: samples // hop."""
        return samples // self.hop

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, samples // hop, channels)."""
        if wav.dim() != 2:
            raise ValueError(f"ConvEncoder expects a waveform of shape (batch, samples); got shape {tuple(wav.shape)}")
        if wav.shape[1] < self.hop:
            raise ValueError(f"ConvEncoder needs at least {self.hop} samples (one frame); got {wav.shape[1]}")
        return self.encode_padded(nn.functional.pad(wav, (self.pad_left, self.pad_right)))

    def encode_padded(self, wav: torch.Tensor) -> torch.Tensor:
        """(batch, samples already padded, or carrying real context) -> (batch, frames, channels)."""
        x = self.layers(wav[:, None, None, :])  # (batch, channels, 1, frames), channels_last
        return x.permute(0, 2, 3, 1).squeeze(1)


def standardize(wav: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance per row of (batch, samples): the untrained encoder otherwise outputs mostly biases."""
    mean = wav.mean(dim=-1, keepdim=True)
    std = wav.std(dim=-1, keepdim=True, unbiased=False)
    return (wav - mean) / (std + eps)


class LogMelFrames(nn.Module):
    """Log-mel spectrogram frames aligned with ConvEncoder's: (batch, samples) -> (batch, samples // hop, n_mels)."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80, hop: int = 160, window: int = 400):
        super().__init__()
        import torchaudio  # local: keeps `import cpc.models` light for users who never need mel features

        self.pad_left = (window - hop) // 2
        self.pad_right = window - hop - self.pad_left
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=window, win_length=window, hop_length=hop, n_mels=n_mels, center=False
        )
        self.dim = n_mels

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        padded = nn.functional.pad(wav, (self.pad_left, self.pad_right))
        return torch.log(self.mel(padded.float()) + 1e-6).transpose(1, 2)
