"""Time-domain waveform augmentation for CPC, after CPC2 (Kharitonov et al. 2021, "Data Augmenting Contrastive
Learning of Speech Representations in the Time Domain"): pitch shift without tempo change, additive noise (recorded
or coloured) at an SNR, reverberation from synthetic room impulse responses, band reject and time dropout. Every
effect keeps the length, so 10 ms frames stay aligned with their labels and with the clean window. Every random
draw comes from a generator the caller passes (`numpy_rng(stream_rng)`), so equal generator states give identical
output and a resumed stream repeats itself. `augment_items` is the stream stage: it gives each window the version
the context network sees (field) and the one the target and negative frames come from (target_field; the audio
stream's fields are cpc.data.audio.FIELD and TARGET_FIELD).

    augmenter = Augmenter(AugmentConfig(past=True), sample_rate=16000)
    windows = augment_items(windows, "wav", "wav_future", augmenter, rng)   # "wav" augmented, "wav_future" clean
"""

from __future__ import annotations

import bisect
import functools
import math
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import soundfile as sf
import torch

from cpc.config import ConfigError

try:  # scipy's FFT is ~3x faster on a batch of rows than numpy's; numpy's is as fast on one row
    from scipy import fft as _fft
except ImportError:  # pragma: no cover - scipy is not a declared dependency
    from numpy import fft as _fft

EFFECTS = ("pitch", "noise", "reverb", "bandreject", "dropout")  # the order they are applied in
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f**exponent


@dataclass
class AugmentConfig:
    """What to augment and how. `past` and `future` both False (the default) is the identity; `past: true` alone
    is CPC2's best setup (pitch + additive noise + reverberation on the context input, clean targets)."""

    past: bool = False  # augment the window the context network c_t sees
    future: bool = False  # augment the window the target and negative frames z come from (independent draw)
    # Pitch shift without tempo change, uniform in cents (CPC2: sox `pitch` with randint(-300, 300) cents).
    pitch_prob: float = 1.0
    pitch_cents: tuple[float, float] = (-300.0, 300.0)
    # Additive noise at a window-level SNR uniform in dB (CPC2: one fixed nominal 15 dB).
    noise_prob: float = 1.0
    noise_snr_db: tuple[float, float] = (5.0, 15.0)
    noise_dir: str = ""  # folder of noise recordings (any file soundfile reads), resampled to the stream's rate
    noise_recorded_prob: float = 0.5  # with both kinds available: share of draws from recordings
    noise_colours: tuple[str, ...] = ("white", "pink", "brown")  # spectrally shaped Gaussian noise
    noise_max_seconds: float = 600.0  # recordings kept in memory (int16), per worker
    # Reverberation: direct path + exponentially decaying noise tail (see synthetic_rir).
    reverb_prob: float = 1.0
    reverb_rt60_s: tuple[float, float] = (0.2, 0.8)  # decay time to -60 dB below 1 kHz
    reverb_drr_db: tuple[float, float] = (0.0, 12.0)  # direct-to-reverberant energy ratio
    reverb_damping: float = 0.5  # RT60 falls linearly above 1 kHz, to (1 - damping) x RT60 at Nyquist
    reverb_rirs: int = 64  # impulse responses in the bank (built once from bank_seed; DRR drawn per use)
    # Band reject on the mel scale: width a uniform fraction of mel(Nyquist) (CPC2: up to 27/256), position uniform.
    bandreject_prob: float = 0.0
    bandreject_width: tuple[float, float] = (0.0, 27 / 256)
    # Time dropout: spans zeroed, each of a length uniform in ms (CPC2: one span, randint(0, 100 ms)).
    dropout_prob: float = 0.0
    dropout_ms: tuple[float, float] = (0.0, 100.0)
    dropout_spans: int = 1
    # "chain": every effect fires on its own with its probability (as the CPC2 paper's combinations); "one": one
    # effect with probability > 0 is picked uniformly per window, then fires with its probability (as CPC_audio's
    # CPC_v2 CombinedTransforms, which applies one random effect of the list): ~1/4 of the chain's cost.
    combine: str = "chain"
    bank_seed: int = 0  # seeds the noise and RIR banks (the same in every worker); draws use the caller's rng

    @property
    def enabled(self) -> bool:
        return (self.past or self.future) and any(getattr(self, f"{e}_prob") > 0 for e in EFFECTS)


def check_augment_config(config: AugmentConfig, where: str = "augment") -> None:
    """A ConfigError naming the key and its valid range for the first value out of range."""

    def fail(key: str, valid: str, value: Any) -> None:
        raise ConfigError(f"{where}.{key}: {valid}; got {value!r}")

    def span(key: str, low: float, high: float, unit: str = "") -> None:
        value = getattr(config, key)
        if len(value) != 2 or not low <= value[0] <= value[1] <= high:
            fail(key, f"expected [min, max] with {low}{unit} <= min <= max <= {high}{unit}", value)

    for effect in EFFECTS:
        p = getattr(config, f"{effect}_prob")
        if not 0 <= p <= 1:
            fail(f"{effect}_prob", "a probability must lie in [0, 1]", p)
    span("pitch_cents", -1200, 1200, " cents")
    span("noise_snr_db", -30, 60, " dB")
    span("reverb_rt60_s", 0.05, 3.0, " s")
    span("reverb_drr_db", -30, 40, " dB")
    span("bandreject_width", 0, 1)
    span("dropout_ms", 0, 10_000, " ms")
    if not 0 <= config.noise_recorded_prob <= 1:
        fail("noise_recorded_prob", "a probability must lie in [0, 1]", config.noise_recorded_prob)
    if not 0 <= config.reverb_damping < 1:
        fail("reverb_damping", "expected 0 <= damping < 1", config.reverb_damping)
    if config.combine not in ("chain", "one"):
        fail("combine", "choose 'chain' (every effect on its own) or 'one' (one effect per window)", config.combine)
    if not 1 <= config.reverb_rirs <= 4096:
        fail("reverb_rirs", "expected 1 <= rirs <= 4096", config.reverb_rirs)
    if not 0 <= config.dropout_spans <= 100:
        fail("dropout_spans", "expected 0 <= spans <= 100", config.dropout_spans)
    if not config.noise_max_seconds > 0:
        fail("noise_max_seconds", "expected > 0 seconds", config.noise_max_seconds)
    unknown = [c for c in config.noise_colours if c not in COLOURS]
    if unknown:
        fail("noise_colours", f"colours are {', '.join(COLOURS)}", list(config.noise_colours))
    if config.noise_dir and not Path(config.noise_dir).is_dir():
        fail("noise_dir", "expected an existing folder of noise recordings", config.noise_dir)
    if config.noise_prob > 0 and not config.noise_colours and not config.noise_dir:
        fail("noise_colours", "noise_prob > 0 needs noise: a colour here or a noise_dir", list(config.noise_colours))


def numpy_rng(rng: random.Random) -> np.random.Generator:
    """A numpy generator seeded from (and advancing) the stream's `random.Random`: same state, same draws."""
    return np.random.default_rng(rng.getrandbits(128))


# ----------------------------------------------------------------------------------------------- array plumbing


def _rows(wav) -> tuple[np.ndarray, Any]:
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


def _per_row(value, count: int, name: str) -> np.ndarray:
    out = np.asarray(value, dtype=np.float64)
    if out.ndim == 0:
        return np.full(count, float(out))
    if out.shape != (count,):
        raise ValueError(f"{name}: expected a scalar or one value per row ({count}); got shape {out.shape}")
    return out


@functools.lru_cache(maxsize=None)
def _fast_sizes(limit: int = 1 << 23) -> np.ndarray:
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
def _fast_size_list() -> list[int]:
    return _fast_sizes().tolist()


def fast_size(n: int) -> int:
    sizes = _fast_sizes()
    return int(sizes[np.searchsorted(sizes, n)])


def _reflect_pad(rows: np.ndarray, left: int, right: int) -> np.ndarray:
    """Reflect-pad along time and fade the outer ends to zero, so an FFT's periodic wrap joins smoothly."""
    out = np.pad(rows, ((0, 0), (left, right)), mode="reflect" if rows.shape[1] > 1 else "edge")
    fade = min(64, left, right)
    if fade:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
        out[:, :fade] *= ramp
        out[:, -fade:] *= ramp[::-1]
    return out


# ------------------------------------------------------------------------------------------------------ effects


def pitch_shift(wav, cents, sample_rate: int = 16000, exact: bool = True):
    """Shift pitch by `cents` (scalar or one per row) without changing tempo or length: the window is resampled
    by 2**(cents/1200) (FFT, band-limited) and time-stretched back by overlap-adding 40 ms grains, each read at the
    position of its own output time, moved by whole local pitch periods to keep the waveform continuous (WSOLA).
    exact=False shares one FFT size across rows (~2x faster): the shift is then within 9 cents of the request."""
    rows, back = _rows(wav)
    cents = _per_row(cents, len(rows), "cents")
    out = rows.copy()
    moved = np.flatnonzero(cents != 0)
    if moved.size:
        out[moved] = _pitch_rows(rows[moved], 2.0 ** (cents[moved] / 1200), sample_rate, exact)
    return back(out)


def _nearest_size(target: float) -> int:
    sizes = _fast_size_list()
    at = min(max(bisect.bisect_left(sizes, target), 1), len(sizes) - 1)
    return sizes[at] if abs(sizes[at] - target) < abs(sizes[at - 1] - target) else sizes[at - 1]


def _fft_pair(n_min: int, factor: float) -> tuple[int, int]:
    """Fast FFT sizes (N >= n_min, M) with N / M as close to `factor` as the next 24 sizes of N allow (< 1 cent)."""
    sizes = _fast_sizes()
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
        spectra = _fft.rfft(_reflect_pad(rows[group], pad, n - samples - pad), axis=1)
        for b, spectrum in zip(group, spectra):
            m = sizes[b][1]
            bins = m // 2 + 1
            spectrum = spectrum[:bins] if bins <= len(spectrum) else np.pad(spectrum, (0, bins - len(spectrum)))
            y[b, :m] = _fft.irfft(spectrum, n=m) * (m / n)
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
    spectrum = _fft.rfft(frames * np.hanning(width).astype(np.float32), n=2 * width, axis=2)
    power = spectrum.real**2 + spectrum.imag**2
    corr = _fft.irfft(power, n=2 * width, axis=2)[..., :width]
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


def add_noise(wav, noise, snr_db):
    """wav + noise scaled so that 10 log10(power(wav) / power(noise)) = snr_db over each row (silent rows stay)."""
    rows, back = _rows(wav)
    noise_rows, _ = _rows(noise)
    if noise_rows.shape != rows.shape:
        raise ValueError(f"noise shape {noise_rows.shape} must match the waveform's {rows.shape}")
    snr = _per_row(snr_db, len(rows), "snr_db")
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
    noise = _fft.irfft(spectrum, n=samples)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def band_reject(wav, low_hz, high_hz, sample_rate: int = 16000, transition_hz: float = 40.0):
    """Remove [low_hz, high_hz] (scalars or one per row) with raised-cosine edges `transition_hz` wide outside the
    band: zero-phase, by FFT of the reflect-padded window. Rows with high - low < 1 Hz are left as they are."""
    rows, back = _rows(wav)
    low, high = _per_row(low_hz, len(rows), "low_hz"), _per_row(high_hz, len(rows), "high_hz")
    out = rows.copy()
    chosen = np.flatnonzero(high - low >= 1)
    if chosen.size:
        samples = rows.shape[1]
        pad = min(round(2 * sample_rate / transition_hz), 4 * samples)  # the edges ring for ~1 / transition
        n = fast_size(samples + 2 * pad)
        spectrum = _fft.rfft(_reflect_pad(rows[chosen], pad, n - samples - pad), axis=1)
        step = sample_rate / n  # Hz per bin
        for row, lo, hi in zip(spectrum, low[chosen], high[chosen]):  # only the bins near the band change
            first = max(0, math.floor((lo - transition_hz) / step))
            last = min(len(row), math.ceil((hi + transition_hz) / step) + 1)
            frequency = np.arange(first, last) * step
            outside = np.clip(np.maximum(lo - frequency, frequency - hi) / transition_hz, 0, 1)
            row[first:last] *= (0.5 - 0.5 * np.cos(np.pi * outside)).astype(np.float32)
        out[chosen] = _fft.irfft(spectrum, n=n, axis=1)[:, pad : pad + samples]
    return back(out)


def synthetic_rir(rt60_s: float, drr_db: float, sample_rate: int, rng: np.random.Generator,
                  damping: float = 0.0, onset_ms: float = 5.0) -> np.ndarray:
    """A room impulse response (samples,): a direct path of 1 at sample 0 (no delay, frames stay aligned) and,
    from `onset_ms` on, a Gaussian-noise tail (Polack's statistical model) whose energy decays by 60 dB in
    rt60_s below 1 kHz and faster above (RT60 x (1 - damping) at Nyquist), scaled to the direct-to-reverberant
    energy ratio drr_db; it ends at -60 dB."""
    tail = _rir_tail(rt60_s, sample_rate, rng, damping, onset_ms)
    rir = tail * np.float32(10 ** (-drr_db / 20))
    rir[0] += 1
    return rir


def _rir_tail(rt60_s: float, sample_rate: int, rng: np.random.Generator, damping: float, onset_ms: float) -> np.ndarray:
    onset = max(1, round(onset_ms * sample_rate / 1000))
    length = onset + math.ceil(rt60_s * sample_rate)
    noise = rng.standard_normal(length)
    spectrum = _fft.rfft(noise)
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
        band = _fft.irfft(np.where((frequency >= lo) & (frequency < hi), spectrum, 0), n=length)
        tail += band * 10 ** (-3 * time / rt60)  # amplitude: -60 dB of energy at t = rt60
    tail[:onset] = 0
    return (tail / np.sqrt(np.sum(tail**2))).astype(np.float32)


def reverb(wav, rir, keep_rms: bool = True):
    """Causal convolution with `rir` ((taps,) or one per row), cut to the input's length (FFT, no wrap-around);
    keep_rms rescales each row to its input RMS."""
    rows, back = _rows(wav)
    taps, _ = _rows(rir)
    if len(taps) not in (1, len(rows)):
        raise ValueError(f"rir: expected one impulse response or one per row ({len(rows)}); got {len(taps)}")
    n = fast_size(rows.shape[1] + taps.shape[1] - 1)
    out = _fft.irfft(_fft.rfft(rows, n=n, axis=1) * _fft.rfft(taps, n=n, axis=1), n=n, axis=1)[:, : rows.shape[1]]
    return back(_match_rms(out.astype(np.float32), rows) if keep_rms else out.astype(np.float32))


def _energy(rows: np.ndarray) -> np.ndarray:
    """Sum of squares per row, float64 (BLAS dot: 15x faster than a float64 einsum, relative error ~1e-7)."""
    return (rows[:, None, :] @ rows[:, :, None]).ravel().astype(np.float64)


def _match_rms(out: np.ndarray, reference: np.ndarray) -> np.ndarray:
    have, want = np.sqrt(_energy(out)), np.sqrt(_energy(reference))
    return out * np.where(have > 0, want / np.maximum(have, 1e-30), 1.0).astype(np.float32)[:, None]


def time_dropout(wav, starts, lengths):
    """Zero `lengths` samples from `starts` in each row: scalars (one span everywhere), (batch,) (one span per
    row) or (batch, spans)."""
    rows, back = _rows(wav)
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


# ------------------------------------------------------------------------------------------------- noise sources


class NoiseRecordings:
    """Noise recordings from a folder, mono, at `sample_rate`, peak-normalised int16 in memory (at most
    `max_seconds`, files taken in an order shuffled by `seed`); `crop` draws a window from a file chosen in
    proportion to its length, looping files shorter than the window."""

    def __init__(self, folder: str | Path, sample_rate: int, max_seconds: float = 600.0, seed: int = 0):
        import torchaudio.functional as audio_f

        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"noise folder {folder} does not exist")
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
        random.Random(seed).shuffle(paths)
        budget = int(max_seconds * sample_rate)
        clips, self.skipped, self.left_out = [], [], 0
        for path in paths:
            if budget <= 0:
                self.left_out += 1
                continue
            try:
                rate = sf.info(str(path)).samplerate
                frames = math.ceil(budget * rate / sample_rate) + 64  # read no more than the budget needs
                audio, rate = sf.read(path, frames=frames, dtype="float32", always_2d=True)
            except Exception:  # not audio (a README, a licence file) or unreadable: note it and go on
                self.skipped.append(path.name)
                continue
            audio = audio.mean(axis=1)
            if rate != sample_rate and len(audio):
                audio = audio_f.resample(torch.from_numpy(audio), rate, sample_rate).numpy()
            peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
            if peak == 0:
                self.skipped.append(path.name)
                continue
            clip = np.round(audio[:budget] / peak * 32767).astype(np.int16)
            clips.append(clip)
            budget -= len(clip)
        if not clips:
            raise ValueError(f"noise folder {folder} holds no audio that soundfile can read "
                             f"({len(paths)} files, e.g. {', '.join(p.name for p in paths[:3]) or 'none'})")
        if self.left_out:
            warnings.warn(f"noise folder {folder}: noise_max_seconds = {max_seconds} reached, {self.left_out} "
                          "further files not read", RuntimeWarning, stacklevel=2)
        self.sample_rate = sample_rate
        self.audio = np.concatenate(clips)
        self.bounds = np.cumsum([0] + [len(c) for c in clips])
        self.files = len(clips)

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    def crop(self, samples: int, position: int) -> np.ndarray:
        """(samples,) float32 from the file holding sample `position` (modulo all the audio, so a uniform position
        picks files in proportion to their length), starting there and looping inside that file."""
        position %= len(self.audio)
        file = int(np.searchsorted(self.bounds, position, side="right")) - 1
        clip = self.audio[self.bounds[file] : self.bounds[file + 1]]
        return _cyclic(clip, position - int(self.bounds[file]), samples).astype(np.float32) * np.float32(1 / 32767)


def _cyclic(x: np.ndarray, start: int, samples: int) -> np.ndarray:
    """x[start : start + samples], wrapping around x as often as needed."""
    if start + samples <= len(x):
        return x[start : start + samples]
    return np.take(x, np.arange(start, start + samples), mode="wrap")


# ------------------------------------------------------------------------------------------------------ augmenter


class Augmenter:
    """The configured chain: pitch -> noise -> reverb -> band reject -> dropout, each effect applied to a row with
    its probability and with parameters drawn per row from the generator passed to the call. Banks (coloured
    noise, RIR tails, recordings) are built here once from config.bank_seed."""

    def __init__(self, config: AugmentConfig = AugmentConfig(), sample_rate: int = 16000):
        check_augment_config(config)
        self.config, self.sample_rate = config, sample_rate
        bank = np.random.default_rng(config.bank_seed)
        self.colours = np.zeros((0, 0), dtype=np.float32)
        self.recordings: NoiseRecordings | None = None
        if config.noise_prob > 0:
            if config.noise_colours:
                self.colours = np.stack([coloured_noise(c, 1 << 19, bank) for c in config.noise_colours])
            if config.noise_dir and (config.noise_recorded_prob > 0 or not len(self.colours)):
                self.recordings = NoiseRecordings(config.noise_dir, sample_rate, config.noise_max_seconds,
                                                  config.bank_seed)
        self.tails = None
        if config.reverb_prob > 0:
            rt60 = bank.uniform(*config.reverb_rt60_s, config.reverb_rirs)
            onset = bank.uniform(2.0, 10.0, config.reverb_rirs)
            tails = [_rir_tail(t, sample_rate, bank, config.reverb_damping, o) for t, o in zip(rt60, onset)]
            self.tails = np.zeros((len(tails), max(len(t) for t in tails)), dtype=np.float32)
            for i, tail in enumerate(tails):
                self.tails[i, : len(tail)] = tail
        self._tail_spectra: dict[int, np.ndarray] = {}

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def __call__(self, wav, rng: np.random.Generator):
        """An augmented copy of wav ((samples,) or (batch, samples), numpy or torch): one independent draw per row."""
        rows, back = _rows(wav)
        return back(self.rows(rows, rng))

    def rows(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(batch, samples) float32 -> augmented copy. The draws per row do not depend on which effects fire."""
        cfg, count, samples = self.config, len(rows), rows.shape[1]
        active = [e for e in EFFECTS if getattr(cfg, f"{e}_prob") > 0]
        picked = rng.integers(0, len(active), count) if cfg.combine == "one" and active else None
        out = rows.copy()
        for index, effect in enumerate(active):
            fire = rng.random(count) < getattr(cfg, f"{effect}_prob")
            fire = np.flatnonzero(fire if picked is None else fire & (picked == index))
            params = getattr(self, f"_draw_{effect}")(count, samples, rng)
            if fire.size:
                out[fire] = getattr(self, f"_apply_{effect}")(out[fire], {k: v[fire] for k, v in params.items()})
        return out

    # each effect: _draw_* draws for every row (so later draws do not shift), _apply_* runs on the chosen rows

    def _draw_pitch(self, count, samples, rng):
        return {"cents": rng.uniform(*self.config.pitch_cents, count)}

    def _apply_pitch(self, rows, p):
        return pitch_shift(rows, p["cents"], self.sample_rate, exact=False)

    def _draw_noise(self, count, samples, rng):
        cfg = self.config
        recorded = rng.random(count) < (cfg.noise_recorded_prob if len(self.colours) else 1.0)
        if self.recordings is None:
            recorded[:] = False
        return {
            "recorded": recorded,
            "colour": rng.integers(0, max(1, len(self.colours)), count),
            "offset": rng.integers(0, 1 << 62, count),  # into the colour bank or all recordings, taken modulo
            "sign": rng.choice(np.array([-1.0, 1.0], dtype=np.float32), count),
            "snr": rng.uniform(*cfg.noise_snr_db, count),
        }

    def _apply_noise(self, rows, p):
        samples = rows.shape[1]
        noise = np.empty(rows.shape, dtype=np.float32)
        for i in range(len(rows)):
            if p["recorded"][i]:
                noise[i] = self.recordings.crop(samples, int(p["offset"][i]))
            else:
                bank = self.colours[p["colour"][i]]
                noise[i] = _cyclic(bank, int(p["offset"][i]) % len(bank), samples)
            noise[i] *= p["sign"][i]
        return add_noise(rows, noise, p["snr"])

    def _draw_reverb(self, count, samples, rng):
        return {"rir": rng.integers(0, len(self.tails), count), "drr": rng.uniform(*self.config.reverb_drr_db, count)}

    def _apply_reverb(self, rows, p):
        samples = rows.shape[1]
        n = fast_size(samples + self.tails.shape[1] - 1)
        if n not in self._tail_spectra:  # RIR spectra per FFT size: computed once, reused by every call
            if len(self._tail_spectra) >= 4:  # windows of many lengths: keep the newest few (~9 MB each)
                del self._tail_spectra[next(iter(self._tail_spectra))]
            self._tail_spectra[n] = _fft.rfft(self.tails, n=n, axis=1).astype(np.complex64)
        gain = (10 ** (-p["drr"] / 20)).astype(np.float32)[:, None]
        response = 1 + gain * self._tail_spectra[n][p["rir"]]  # direct path + scaled tail
        out = _fft.irfft(_fft.rfft(rows, n=n, axis=1) * response, n=n, axis=1)[:, :samples]
        return _match_rms(out.astype(np.float32), rows)

    def _draw_bandreject(self, count, samples, rng):
        top = _mel(self.sample_rate / 2)
        width = rng.uniform(*self.config.bandreject_width, count) * top
        start = rng.uniform(0, 1, count) * (top - width)
        return {"low": _hz(start), "high": _hz(start + width)}

    def _apply_bandreject(self, rows, p):
        return band_reject(rows, p["low"], p["high"], self.sample_rate)

    def _draw_dropout(self, count, samples, rng):
        spans = self.config.dropout_spans
        low, high = (round(ms * self.sample_rate / 1000) for ms in self.config.dropout_ms)
        lengths = np.minimum(rng.integers(low, high + 1, (count, spans)), samples)
        starts = (rng.random((count, spans)) * (samples - lengths + 1)).astype(np.int64)
        return {"starts": starts, "lengths": lengths}

    def _apply_dropout(self, rows, p):
        return time_dropout(rows, p["starts"], p["lengths"])


def _mel(hz):
    return 2595.0 * np.log10(1 + np.asarray(hz) / 700)


def _hz(mel):
    return 700 * (10 ** (np.asarray(mel) / 2595.0) - 1)


# ----------------------------------------------------------------------------------------------------- the stage


def augment_items(items: Iterable[dict[str, Any]], field: str, target_field: str, augmenter: Augmenter,
                  rng: random.Random, chunk: int = 16) -> Iterator[dict[str, Any]]:
    """Stream stage: item[field] (a (samples,) float32 window) becomes what the context network sees and
    item[target_field] what the target frames come from: past only -> (augmented, clean), future only ->
    (clean, augmented), both -> two independent draws. Disabled (or every probability 0): items pass unchanged,
    with no second field. Windows are augmented `chunk` at a time (vectorised); draws come from `rng`."""
    if not augmenter.enabled:
        yield from items
        return
    generator = numpy_rng(rng)
    cfg = augmenter.config
    iterator = iter(items)
    while True:
        group = [item for _, item in zip(range(chunk), iterator)]
        if not group:
            return
        past = [item[field] for item in group]
        future = list(past)
        for length in dict.fromkeys(len(w) for w in past):  # rows of one length are augmented together
            which = [i for i, w in enumerate(past) if len(w) == length]
            clean = np.stack([np.asarray(past[i], dtype=np.float32) for i in which])
            if cfg.past:
                for i, row in zip(which, augmenter.rows(clean, generator)):
                    past[i] = row
            if cfg.future:
                for i, row in zip(which, augmenter.rows(clean, generator)):
                    future[i] = row
        for item, now, later in zip(group, past, future):
            out = dict(item)
            out[field], out[target_field] = now, later
            yield out
