"""Length-keeping signal processing on float32 waveforms for the augmentation effects: additive noise at an SNR,
coloured noise, band reject, synthetic room impulse responses and reverberation, time dropout, and the plumbing
they share (any (samples,) or (batch, samples) numpy or torch input -> float32 rows and back, fast FFT sizes,
reflect padding, RMS matching). Nothing here draws at random unless handed a generator. Pitch shifting, the
longest algorithm, is in cpc.data.augment.pitch.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

try:  # scipy's FFT is ~3x faster on a batch of rows than numpy's; numpy's is as fast on one row
    from scipy import fft
except ImportError:  # pragma: no cover - scipy is not a declared dependency
    from numpy import fft

COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f**exponent


# ----------------------------------------------------------------------------------------------- array plumbing


def as_rows(wav) -> tuple[np.ndarray, Any]:
    """(samples,) or (batch, samples), numpy or torch -> float32 (batch, samples) numpy and a function that
    gives a result back in the caller's form (type, shape, device)."""
    tensor = isinstance(wav, torch.Tensor)
    array = wav.detach().cpu().numpy() if tensor else np.asarray(wav)
    if array.ndim not in (1, 2):
        raise ValueError(f"expected a waveform of shape (samples,) or (batch, samples); got shape {array.shape}")
    single = array.ndim == 1
    rows = np.asarray(array[None] if single else array, dtype=np.float32)

    def back(out: np.ndarray):
        out = out[0] if single else out
        return torch.from_numpy(np.ascontiguousarray(out)).to(wav.device) if tensor else out

    return rows, back


def per_row(value, count: int, name: str) -> np.ndarray:
    out = np.asarray(value, dtype=np.float64)
    if out.ndim == 0:
        return np.full(count, float(out))
    if out.shape != (count,):
        raise ValueError(f"{name}: expected a scalar or one value per row ({count}); got shape {out.shape}")
    return out


@functools.lru_cache(maxsize=None)
def fast_sizes(limit: int = 1 << 23) -> np.ndarray:
    """Sorted FFT sizes up to `limit` with no prime factor above 11 (pocketfft's fast sizes)."""
    sizes = [1]
    for prime in (2, 3, 5, 7, 11):
        grown = []
        for size in sizes:
            while size <= limit:
                grown.append(size)
                size *= prime
        sizes = grown
    return np.array(sorted(sizes), dtype=np.int64)


@functools.lru_cache(maxsize=None)
def fast_size_list() -> list[int]:
    return fast_sizes().tolist()


def fast_size(n: int) -> int:
    sizes = fast_sizes()
    return int(sizes[np.searchsorted(sizes, n)])


def reflect_pad(rows: np.ndarray, left: int, right: int) -> np.ndarray:
    """Reflect-pad along time and fade the outer ends to zero, so an FFT's periodic wrap joins smoothly."""
    out = np.pad(rows, ((0, 0), (left, right)), mode="reflect" if rows.shape[1] > 1 else "edge")
    fade = min(64, left, right)
    if fade:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
        out[:, :fade] *= ramp
        out[:, -fade:] *= ramp[::-1]
    return out



# ------------------------------------------------------------------------------------------------------ effects


def add_noise(wav, noise, snr_db):
    """wav + noise scaled so that 10 log10(power(wav) / power(noise)) = snr_db over each row (silent rows stay)."""
    rows, back = as_rows(wav)
    noise_rows, _ = as_rows(noise)
    if noise_rows.shape != rows.shape:
        raise ValueError(f"noise shape {noise_rows.shape} must match the waveform's {rows.shape}")
    snr = per_row(snr_db, len(rows), "snr_db")
    signal, power = _energy(rows) / rows.shape[1], _energy(noise_rows) / rows.shape[1]
    gain = np.where(power > 0, np.sqrt(signal / np.maximum(power, 1e-30) / 10 ** (snr / 10)), 0.0)
    return back(rows + gain.astype(np.float32)[:, None] * noise_rows)


def coloured_noise(colour: str, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS Gaussian noise with power spectrum ~ 1/f**a (white 0, pink 1, brown 2), made by shaping a white
    spectrum; periodic in `samples`, so crops may wrap around."""
    if colour not in COLOURS:
        raise ValueError(f"unknown noise colour {colour!r}; choose one of {', '.join(COLOURS)}")
    spectrum = rng.standard_normal(samples // 2 + 1) + 1j * rng.standard_normal(samples // 2 + 1)
    frequency = np.arange(samples // 2 + 1, dtype=np.float64)
    spectrum[1:] /= frequency[1:] ** (COLOURS[colour] / 2)
    spectrum[0] = 0
    noise = fft.irfft(spectrum, n=samples)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def band_reject(wav, low_hz, high_hz, sample_rate: int = 16000, transition_hz: float = 40.0):
    """Remove [low_hz, high_hz] (scalars or one per row) with raised-cosine edges `transition_hz` wide outside the
    band: zero-phase, by FFT of the reflect-padded window. Rows with high - low < 1 Hz are left as they are."""
    rows, back = as_rows(wav)
    low, high = per_row(low_hz, len(rows), "low_hz"), per_row(high_hz, len(rows), "high_hz")
    out = rows.copy()
    chosen = np.flatnonzero(high - low >= 1)
    if chosen.size:
        samples = rows.shape[1]
        pad = min(round(2 * sample_rate / transition_hz), 4 * samples)  # the edges ring for ~1 / transition
        n = fast_size(samples + 2 * pad)
        spectrum = fft.rfft(reflect_pad(rows[chosen], pad, n - samples - pad), axis=1)
        step = sample_rate / n  # Hz per bin
        for row, lo, hi in zip(spectrum, low[chosen], high[chosen]):  # only the bins near the band change
            first = max(0, math.floor((lo - transition_hz) / step))
            last = min(len(row), math.ceil((hi + transition_hz) / step) + 1)
            frequency = np.arange(first, last) * step
            outside = np.clip(np.maximum(lo - frequency, frequency - hi) / transition_hz, 0, 1)
            row[first:last] *= (0.5 - 0.5 * np.cos(np.pi * outside)).astype(np.float32)
        out[chosen] = fft.irfft(spectrum, n=n, axis=1)[:, pad : pad + samples]
    return back(out)


def synthetic_rir(rt60_s: float, drr_db: float, sample_rate: int, rng: np.random.Generator,
                  damping: float = 0.0, onset_ms: float = 5.0) -> np.ndarray:
    """A room impulse response (samples,): a direct path of 1 at sample 0 (no delay, frames stay aligned) and,
    from `onset_ms` on, a Gaussian-noise tail (Polack's statistical model) whose energy decays by 60 dB in
    rt60_s below 1 kHz and faster above (RT60 x (1 - damping) at Nyquist), scaled to the direct-to-reverberant
    energy ratio drr_db; it ends at -60 dB."""
    tail = rir_tail(rt60_s, sample_rate, rng, damping, onset_ms)
    rir = tail * np.float32(10 ** (-drr_db / 20))
    rir[0] += 1
    return rir


def rir_tail(rt60_s: float, sample_rate: int, rng: np.random.Generator, damping: float, onset_ms: float) -> np.ndarray:
    onset = max(1, round(onset_ms * sample_rate / 1000))
    length = onset + math.ceil(rt60_s * sample_rate)
    noise = rng.standard_normal(length)
    spectrum = fft.rfft(noise)
    frequency = np.arange(len(spectrum)) * (sample_rate / length)
    nyquist = sample_rate / 2
    edges = [0.0]
    while edges[-1] * 2 < nyquist and len(edges) < 12:
        edges.append(1000.0 * 2 ** (len(edges) - 1))  # 0, 1k, 2k, 4k, ... (octave bands above 1 kHz)
    edges.append(nyquist + 1)
    time = np.maximum(np.arange(length) - onset, 0) / sample_rate
    tail = np.zeros(length)
    for lo, hi in zip(edges[:-1], edges[1:]):
        centre = 0.0 if lo == 0 else math.sqrt(lo * min(hi, nyquist))
        rt60 = rt60_s * (1 - damping * max(0.0, centre - 1000) / max(nyquist - 1000, 1))
        band = fft.irfft(np.where((frequency >= lo) & (frequency < hi), spectrum, 0), n=length)
        tail += band * 10 ** (-3 * time / rt60)  # amplitude: -60 dB of energy at t = rt60
    tail[:onset] = 0
    return (tail / np.sqrt(np.sum(tail**2))).astype(np.float32)


def reverb(wav, rir, keep_rms: bool = True):
    """Causal convolution with `rir` ((taps,) or one per row), cut to the input's length (FFT, no wrap-around);
    keep_rms rescales each row to its input RMS."""
    rows, back = as_rows(wav)
    taps, _ = as_rows(rir)
    if len(taps) not in (1, len(rows)):
        raise ValueError(f"rir: expected one impulse response or one per row ({len(rows)}); got {len(taps)}")
    n = fast_size(rows.shape[1] + taps.shape[1] - 1)
    out = fft.irfft(fft.rfft(rows, n=n, axis=1) * fft.rfft(taps, n=n, axis=1), n=n, axis=1)[:, : rows.shape[1]]
    return back(match_rms(out.astype(np.float32), rows) if keep_rms else out.astype(np.float32))


def _energy(rows: np.ndarray) -> np.ndarray:
    """Sum of squares per row, float64 (BLAS dot: 15x faster than a float64 einsum, relative error ~1e-7)."""
    return (rows[:, None, :] @ rows[:, :, None]).ravel().astype(np.float64)


def match_rms(out: np.ndarray, reference: np.ndarray) -> np.ndarray:
    have, want = np.sqrt(_energy(out)), np.sqrt(_energy(reference))
    return out * np.where(have > 0, want / np.maximum(have, 1e-30), 1.0).astype(np.float32)[:, None]


def time_dropout(wav, starts, lengths):
    """Zero `lengths` samples from `starts` in each row: scalars (one span everywhere), (batch,) (one span per
    row) or (batch, spans)."""
    rows, back = as_rows(wav)
    starts, lengths = np.broadcast_arrays(np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64))
    if starts.ndim < 2:
        starts, lengths = (np.broadcast_to(a.reshape(-1, 1), (len(rows), 1)) for a in (starts, lengths))
    if starts.shape[0] != len(rows):
        raise ValueError(f"starts: expected spans for {len(rows)} rows; got shape {starts.shape}")
    time = np.arange(rows.shape[1])
    drop = np.zeros(rows.shape, dtype=bool)
    for span in range(starts.shape[1]):
        begin = starts[:, span : span + 1]
        drop |= (time >= begin) & (time < begin + lengths[:, span : span + 1])
    out = rows.copy()
    out[drop] = 0
    return back(out)


def cyclic(x: np.ndarray, start: int, samples: int) -> np.ndarray:
    """x[start : start + samples], wrapping around x as often as needed."""
    if start + samples <= len(x):
        return x[start : start + samples]
    return np.take(x, np.arange(start, start + samples), mode="wrap")


def hz_to_mel(hz):
    return 2595.0 * np.log10(1 + np.asarray(hz) / 700)


def mel_to_hz(mel):
    return 700 * (10 ** (np.asarray(mel) / 2595.0) - 1)
