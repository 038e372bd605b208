"""Pitch shift without tempo change for the augmentation's pitch effect: band-limited FFT resampling of the window,
then a time-scale back by overlap-adding 40 ms grains moved by whole local pitch periods (WSOLA), so the length is
exact and events stay on their 10 ms frames.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from cpc.data.augment.signal import as_rows, fast_size, fast_size_list, fast_sizes, fft, per_row, reflect_pad


def pitch_shift(wav, cents, sample_rate: int = 16000, exact: bool = True):
    """Shift pitch by `cents` (scalar or one per row) without changing tempo or length: the window is resampled
    by 2**(cents/1200) (FFT, band-limited) and time-stretched back by overlap-adding 40 ms grains, each read at the
    position of its own output time, moved by whole local pitch periods to keep the waveform continuous (WSOLA).
    exact=False shares one FFT size across rows (~2x faster): the shift is then within 9 cents of the request."""
    rows, back = as_rows(wav)
    cents = per_row(cents, len(rows), "cents")
    out = rows.copy()
    moved = np.flatnonzero(cents != 0)
    if moved.size:
        out[moved] = _pitch_rows(rows[moved], 2.0 ** (cents[moved] / 1200), sample_rate, exact)
    return back(out)


def _nearest_size(target: float) -> int:
    sizes = fast_size_list()
    at = min(max(bisect.bisect_left(sizes, target), 1), len(sizes) - 1)
    return sizes[at] if abs(sizes[at] - target) < abs(sizes[at - 1] - target) else sizes[at - 1]


def _fft_pair(n_min: int, factor: float) -> tuple[int, int]:
    """Fast FFT sizes (N >= n_min, M) with N / M as close to `factor` as the next 24 sizes of N allow (< 1 cent)."""
    sizes = fast_sizes()
    first = np.searchsorted(sizes, n_min)
    pairs = [(n, _nearest_size(n / factor)) for n in sizes[first : first + 24].tolist()]
    return min(pairs, key=lambda nm: abs(math.log(nm[0] / (nm[1] * factor))))


def _pitch_rows(rows: np.ndarray, factors: np.ndarray, sample_rate: int, exact: bool) -> np.ndarray:
    batch, samples = rows.shape
    hop = max(2, round(0.02 * sample_rate))  # grains of 2 * hop = 40 ms, Hann, 50 % overlap (sums to one)
    grain = 2 * hop
    longest_period = round(sample_rate / 70)
    pad = math.ceil(max(1.0, factors.max()) * (grain + longest_period)) + 8
    grains = math.ceil(samples / hop) + 1  # grain k covers output [(k - 1) hop, (k + 1) hop)
    # 1. Band-limited resampling: y[j] = x_padded[j * N / M] with N / M ~ factor: pitch and tempo both move.
    if exact:
        sizes = [_fft_pair(samples + 2 * pad, f) for f in factors]
    else:
        common = fast_size(samples + 2 * pad)
        sizes = [(common, _nearest_size(common / f)) for f in factors]
    y = np.zeros((batch, max(m for _, m in sizes) + grain), dtype=np.float32)
    starts = np.empty((batch, grains), dtype=np.int64)
    for n in dict.fromkeys(n for n, _ in sizes):  # one batched FFT per input size
        group = [b for b in range(batch) if sizes[b][0] == n]
        spectra = fft.rfft(reflect_pad(rows[group], pad, n - samples - pad), axis=1)
        for b, spectrum in zip(group, spectra):
            m = sizes[b][1]
            bins = m // 2 + 1
            spectrum = spectrum[:bins] if bins <= len(spectrum) else np.pad(spectrum, (0, bins - len(spectrum)))
            y[b, :m] = fft.irfft(spectrum, n=m) * (m / n)
            # grain k's centre (output time k * hop) reads y where x has that time: (t + pad) * M / N
            starts[b] = np.rint((np.arange(grains) * hop + pad) * (m / n)).astype(np.int64) - hop
    # 2. Local pitch period of every grain, from the autocorrelation of a 4 kHz copy (0 where not periodic).
    periods = _grain_periods(y, starts, grain, sample_rate).tolist()
    # 3. WSOLA: grain k starts where grain k-1's natural continuation starts, moved by whole periods to stay
    #    within half a period of its own output time (unvoiced grains: at their own time). Scalar Python is
    #    4x faster here than numpy over rows.
    limit = longest_period // 2
    positions = starts.tolist()
    for row, ideal, period in zip(positions, starts.tolist(), periods):
        for k in range(1, grains):
            offset = row[k - 1] + hop - ideal[k]  # the continuation, relative to the ideal read position
            shift = offset - round(offset / period[k]) * period[k] if period[k] > 0 else 0
            row[k] = ideal[k] + (round(shift) if -limit <= shift <= limit else 0)
    # 4. Overlap-add: output block j = first half of grain j + second half of grain j - 1.
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(grain) / grain)).astype(np.float32)
    pieces = np.lib.stride_tricks.sliding_window_view(y, grain, axis=1)[np.arange(batch)[:, None], positions]
    pieces = pieces * window  # (batch, grains, grain)
    blocks = np.zeros((batch, grains + 1, hop), dtype=np.float32)
    blocks[:, :grains] += pieces[:, :, :hop]
    blocks[:, 1:] += pieces[:, :, hop:]
    return blocks.reshape(batch, -1)[:, hop : hop + samples]


def _grain_periods(y: np.ndarray, starts: np.ndarray, grain: int, sample_rate: int) -> np.ndarray:
    """(batch, grains) pitch period in samples of y at each grain (fractional), 0 where the grain is not periodic
    (peak normalised autocorrelation below 0.4 within 2.5-14 ms)."""
    step = max(1, round(sample_rate / 4000))
    end = y.shape[1] // step * step
    coarse = sum(y[:, i:end:step] for i in range(step))  # box-filtered and decimated (mean(axis) is 12x slower)
    width = grain // step
    begin = np.clip((starts + grain // 2) // step - width // 2, 0, coarse.shape[1] - width)  # grain centres
    frames = np.lib.stride_tricks.sliding_window_view(coarse, width, axis=1)[np.arange(len(y))[:, None], begin]
    frames = frames - frames.mean(axis=2, keepdims=True)
    spectrum = fft.rfft(frames * np.hanning(width).astype(np.float32), n=2 * width, axis=2)
    power = spectrum.real**2 + spectrum.imag**2
    corr = fft.irfft(power, n=2 * width, axis=2)[..., :width]
    shortest, longest = max(2, int(sample_rate / 400 / step)), min(width - 2, int(sample_rate / 70 / step) + 1)
    energy = corr[..., :1]
    r = corr[..., shortest : longest + 1] / np.maximum(energy, 1e-20)
    best = np.argmax(r, axis=2)
    peak = np.take_along_axis(r, best[..., None], axis=2)[..., 0]
    # parabolic interpolation of the peak lag, then back to full-rate samples
    left = np.take_along_axis(r, np.clip(best - 1, 0, r.shape[2] - 1)[..., None], axis=2)[..., 0]
    right = np.take_along_axis(r, np.clip(best + 1, 0, r.shape[2] - 1)[..., None], axis=2)[..., 0]
    curve = left - 2 * peak + right
    nudge = np.where(curve < 0, 0.5 * (left - right) / np.where(curve < 0, curve, -1), 0.0)
    lag = (best + shortest + np.clip(nudge, -0.5, 0.5)) * step
    return np.where((peak > 0.4) & (energy[..., 0] > 0), lag, 0.0)

