"""The built-in augmentation effects, after CPC2 (Kharitonov et al. 2021): pitch shift without tempo change,
additive noise (recorded or coloured) at an SNR, reverberation from synthetic room impulse responses, band reject
and time dropout. Each is one Effect class with its settings beside it; the registry lines at the bottom set the
order the chain applies them in (the noise is in the room, so it reverberates too). The DSP is in
cpc.data.augment.signal and cpc.data.augment.pitch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpc.data.augment.pitch import pitch_shift
from cpc.data.augment.recordings import NoiseRecordings
from cpc.data.augment.registry import Effect, SettingChecks, register_effect
from cpc.data.augment.signal import (COLOURS, add_noise, band_reject, coloured_noise, cyclic, fast_size, fft,
                                     hz_to_mel, match_rms, mel_to_hz, rir_tail, time_dropout)


@dataclass
class PitchSettings:
    # Pitch shift without tempo change, uniform in cents (CPC2: sox `pitch` with randint(-300, 300) cents).
    pitch_prob: float = 1.0
    pitch_cents: tuple[float, float] = (-300.0, 300.0)


class Pitch(Effect):
    name, Settings = "pitch", PitchSettings

    @staticmethod
    def check(config, rules: SettingChecks) -> None:
        rules.span("pitch_cents", -1200, 1200, " cents")

    def draw(self, count, samples, rng):
        return {"cents": rng.uniform(*self.config.pitch_cents, count)}

    def apply(self, rows, params):
        return pitch_shift(rows, params["cents"], self.sample_rate, exact=False)


@dataclass
class NoiseSettings:
    # Additive noise at a window-level SNR uniform in dB (CPC2: one fixed nominal 15 dB).
    noise_prob: float = 1.0
    noise_snr_db: tuple[float, float] = (5.0, 15.0)
    noise_dir: str = ""  # folder of noise recordings (any file soundfile reads), resampled to the stream's rate
    noise_recorded_prob: float = 0.5  # with both kinds available: share of draws from recordings
    noise_colours: tuple[str, ...] = ("white", "pink", "brown")  # spectrally shaped Gaussian noise
    noise_max_seconds: float = 600.0  # recordings kept in memory (int16), per worker


class Noise(Effect):
    """Coloured noise from a periodic bank per colour, recordings from noise_dir; a crop at a random offset with
    a random sign, scaled to the drawn SNR."""

    name, Settings = "noise", NoiseSettings

    def __init__(self, config, sample_rate, bank):
        super().__init__(config, sample_rate, bank)
        self.colours = np.zeros((0, 0), dtype=np.float32)
        self.recordings: NoiseRecordings | None = None
        if config.noise_colours:
            self.colours = np.stack([coloured_noise(c, 1 << 19, bank) for c in config.noise_colours])
        if config.noise_dir and (config.noise_recorded_prob > 0 or not len(self.colours)):
            self.recordings = NoiseRecordings(config.noise_dir, sample_rate, config.noise_max_seconds,
                                              config.bank_seed)

    @staticmethod
    def check(config, rules: SettingChecks) -> None:
        rules.span("noise_snr_db", -30, 60, " dB")
        rules.probability("noise_recorded_prob")
        if not config.noise_max_seconds > 0:
            rules.fail("noise_max_seconds", "expected > 0 seconds", config.noise_max_seconds)
        if any(c not in COLOURS for c in config.noise_colours):
            rules.fail("noise_colours", f"colours are {', '.join(COLOURS)}", list(config.noise_colours))
        if config.noise_dir and not Path(config.noise_dir).is_dir():
            rules.fail("noise_dir", "expected an existing folder of noise recordings", config.noise_dir)
        if config.noise_prob > 0 and not config.noise_colours and not config.noise_dir:
            rules.fail("noise_colours", "noise_prob > 0 needs noise: a colour here or a noise_dir",
                       list(config.noise_colours))

    def draw(self, count, samples, rng):
        recorded = rng.random(count) < (self.config.noise_recorded_prob if len(self.colours) else 1.0)
        if self.recordings is None:
            recorded[:] = False
        return {
            "recorded": recorded,
            "colour": rng.integers(0, max(1, len(self.colours)), count),
            "offset": rng.integers(0, 1 << 62, count),  # into the colour bank or all recordings, taken modulo
            "sign": rng.choice(np.array([-1.0, 1.0], dtype=np.float32), count),
            "snr": rng.uniform(*self.config.noise_snr_db, count),
        }

    def apply(self, rows, params):
        samples = rows.shape[1]
        noise = np.empty(rows.shape, dtype=np.float32)
        for i in range(len(rows)):
            if params["recorded"][i]:
                noise[i] = self.recordings.crop(samples, int(params["offset"][i]))
            else:
                bank = self.colours[params["colour"][i]]
                noise[i] = cyclic(bank, int(params["offset"][i]) % len(bank), samples)
            noise[i] *= params["sign"][i]
        return add_noise(rows, noise, params["snr"])


@dataclass
class ReverbSettings:
    # Reverberation: direct path + exponentially decaying noise tail (see signal.synthetic_rir).
    reverb_prob: float = 1.0
    reverb_rt60_s: tuple[float, float] = (0.2, 0.8)  # decay time to -60 dB below 1 kHz
    reverb_drr_db: tuple[float, float] = (0.0, 12.0)  # direct-to-reverberant energy ratio
    reverb_damping: float = 0.5  # RT60 falls linearly above 1 kHz, to (1 - damping) x RT60 at Nyquist
    reverb_rirs: int = 64  # impulse responses in the bank (built once from bank_seed; DRR drawn per use)


class Reverb(Effect):
    """A bank of `reverb_rirs` RIR tails (RT60 drawn once each); per row a tail and a DRR, applied as
    direct path + scaled tail by FFT, keeping the row's RMS."""

    name, Settings = "reverb", ReverbSettings

    def __init__(self, config, sample_rate, bank):
        super().__init__(config, sample_rate, bank)
        rt60 = bank.uniform(*config.reverb_rt60_s, config.reverb_rirs)
        onset = bank.uniform(2.0, 10.0, config.reverb_rirs)
        tails = [rir_tail(t, sample_rate, bank, config.reverb_damping, o) for t, o in zip(rt60, onset)]
        self.tails = np.zeros((len(tails), max(len(t) for t in tails)), dtype=np.float32)
        for i, tail in enumerate(tails):
            self.tails[i, : len(tail)] = tail
        self.tail_spectra: dict[int, np.ndarray] = {}

    @staticmethod
    def check(config, rules: SettingChecks) -> None:
        rules.span("reverb_rt60_s", 0.05, 3.0, " s")
        rules.span("reverb_drr_db", -30, 40, " dB")
        if not 0 <= config.reverb_damping < 1:
            rules.fail("reverb_damping", "expected 0 <= damping < 1", config.reverb_damping)
        rules.within("reverb_rirs", 1, 4096, "expected 1 <= rirs <= 4096")

    def draw(self, count, samples, rng):
        return {"rir": rng.integers(0, len(self.tails), count), "drr": rng.uniform(*self.config.reverb_drr_db, count)}

    def apply(self, rows, params):
        samples = rows.shape[1]
        n = fast_size(samples + self.tails.shape[1] - 1)
        if n not in self.tail_spectra:  # RIR spectra per FFT size: computed once, reused by every call
            if len(self.tail_spectra) >= 4:  # windows of many lengths: keep the newest few (~9 MB each)
                del self.tail_spectra[next(iter(self.tail_spectra))]
            self.tail_spectra[n] = fft.rfft(self.tails, n=n, axis=1).astype(np.complex64)
        gain = (10 ** (-params["drr"] / 20)).astype(np.float32)[:, None]
        response = 1 + gain * self.tail_spectra[n][params["rir"]]  # direct path + scaled tail
        out = fft.irfft(fft.rfft(rows, n=n, axis=1) * response, n=n, axis=1)[:, :samples]
        return match_rms(out.astype(np.float32), rows)


@dataclass
class BandRejectSettings:
    # Band reject on the mel scale: width a uniform fraction of mel(Nyquist) (CPC2: up to 27/256), position uniform.
    bandreject_prob: float = 0.0
    bandreject_width: tuple[float, float] = (0.0, 27 / 256)


class BandReject(Effect):
    name, Settings = "bandreject", BandRejectSettings

    @staticmethod
    def check(config, rules: SettingChecks) -> None:
        rules.span("bandreject_width", 0, 1)

    def draw(self, count, samples, rng):
        top = hz_to_mel(self.sample_rate / 2)
        width = rng.uniform(*self.config.bandreject_width, count) * top
        start = rng.uniform(0, 1, count) * (top - width)
        return {"low": mel_to_hz(start), "high": mel_to_hz(start + width)}

    def apply(self, rows, params):
        return band_reject(rows, params["low"], params["high"], self.sample_rate)


@dataclass
class DropoutSettings:
    # Time dropout: spans zeroed, each of a length uniform in ms (CPC2: one span, randint(0, 100 ms)).
    dropout_prob: float = 0.0
    dropout_ms: tuple[float, float] = (0.0, 100.0)
    dropout_spans: int = 1


class Dropout(Effect):
    name, Settings = "dropout", DropoutSettings

    @staticmethod
    def check(config, rules: SettingChecks) -> None:
        rules.span("dropout_ms", 0, 10_000, " ms")
        rules.within("dropout_spans", 0, 100, "expected 0 <= spans <= 100")

    def draw(self, count, samples, rng):
        spans = self.config.dropout_spans
        low, high = (round(ms * self.sample_rate / 1000) for ms in self.config.dropout_ms)
        lengths = np.minimum(rng.integers(low, high + 1, (count, spans)), samples)
        starts = (rng.random((count, spans)) * (samples - lengths + 1)).astype(np.int64)
        return {"starts": starts, "lengths": lengths}

    def apply(self, rows, params):
        return time_dropout(rows, params["starts"], params["lengths"])


# The registry: one line per effect, in the order the chain applies them.
register_effect(Pitch)
register_effect(Noise)
register_effect(Reverb)
register_effect(BandReject)
register_effect(Dropout)
