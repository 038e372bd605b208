"""Toy audio made on the fly, for tests and the first demo: sums of sinusoids with per-sequence frequencies."""

from __future__ import annotations

import math

import torch


def sinusoid_batch(
    batch: int,
    samples: int,
    sample_rate: int = 16000,
    tones: int = 3,
    band_hz: tuple[float, float] = (100.0, 3000.0),
    noise: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(batch, samples) float32: each row a sum of `tones` sinusoids with random frequencies, phases and
    amplitudes, plus white noise. Predictable within a row, different across rows."""
    low, high = math.log(band_hz[0]), math.log(band_hz[1])
    freqs = torch.exp(low + (high - low) * torch.rand(batch, tones, 1, generator=generator))
    phases = 2 * math.pi * torch.rand(batch, tones, 1, generator=generator)
    amps = 0.2 + 0.8 * torch.rand(batch, tones, 1, generator=generator)
    t = torch.arange(samples, dtype=torch.float32) / sample_rate
    wav = (amps * torch.sin(2 * math.pi * freqs * t + phases)).sum(dim=1) / tones
    return wav + noise * torch.randn(batch, samples, generator=generator)
