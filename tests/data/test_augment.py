import random

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc.config import ConfigError
from cpc.data.augment import (EFFECTS, AugmentConfig, Augmenter, NoiseRecordings, add_noise, augment_items,
                              band_reject, coloured_noise, numpy_rng, pitch_shift, reverb, synthetic_rir,
                              time_dropout)

SR = 16000


def only(effect: str, **changes) -> AugmentConfig:
    """Past-only augmentation with just `effect` switched on (small RIR bank: fast to build)."""
    probs = {f"{e}_prob": float(e == effect) for e in EFFECTS}
    return AugmentConfig(past=True, reverb_rirs=4, **{**probs, **changes})


def tone(hz, seconds=1.28, phase=0.0):
    return np.sin(2 * np.pi * hz * np.arange(round(seconds * SR)) / SR + phase).astype(np.float32)


def peak_hz(x):
    n = 1 << 19
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    return np.argmax(spectrum) * SR / n


def amplitude_at(x, hz):
    """Amplitude of the hz component in the middle half of x (lock-in against a Hann-windowed sinusoid)."""
    middle = x[len(x) // 4 : 3 * len(x) // 4]
    t = np.arange(len(middle)) / SR
    w = np.hanning(len(middle))
    return 2 * abs(np.sum(w * middle * np.exp(-2j * np.pi * hz * t))) / np.sum(w)


def speechlike(seed=0, seconds=1.28):
    """Harmonic source with a wandering F0, amplitude bursts (syllables) and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    f0 = 120 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.1 * envelope * voiced + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


# --------------------------------------------------------------------------------------------------- pitch shift


@pytest.mark.parametrize("cents", [300, -300, 150, -40])
def test_pitch_shift_moves_a_sinusoid_by_the_factor_and_keeps_length(cents):
    x = tone(220)
    y = pitch_shift(x, cents)
    assert y.shape == x.shape and y.dtype == np.float32
    assert peak_hz(y) / (220 * 2 ** (cents / 1200)) == pytest.approx(1, abs=0.002)  # exact mode: < 3.5 cents
    fast = pitch_shift(x, cents, exact=False)
    assert abs(1200 * np.log2(peak_hz(fast) / (220 * 2 ** (cents / 1200)))) < 10  # one shared FFT size
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.05)


def test_pitch_shift_keeps_events_in_place():
    """A tone burst starts and stops at the same 10 ms frame after the shift: frames stay aligned with labels."""
    x = np.zeros(20480, dtype=np.float32)
    x[8000:14400] = tone(200, 0.4)
    for cents in (300, -300):
        frames = np.sqrt(np.mean(pitch_shift(x, cents).reshape(-1, 160) ** 2, axis=1))
        on = np.flatnonzero(frames > 0.5 * frames.max())
        assert abs(on[0] - 50) <= 1 and abs(on[-1] - 89) <= 1  # 8000 / 160 = 50, 14400 / 160 = 90


def harmonic_to_rest_db(y, f0):
    n = len(y)
    power = np.abs(np.fft.rfft(y * np.hanning(n))) ** 2
    frequency = np.fft.rfftfreq(n, 1 / SR)
    k = np.round(frequency / f0)
    near = (np.abs(frequency - k * f0) < 4) & (k >= 1)
    return 10 * np.log10(power[near].sum() / power[~near].sum())


@pytest.mark.parametrize("f0, cents", [(100, -250), (150, 200), (237, -250), (237, 200)])
def test_pitch_shift_keeps_a_harmonic_sound_clean(f0, cents):
    """Grains moved by whole periods (WSOLA) keep harmonics sharp, also for a low voice shifted down (a period
    of 11.5 ms); plain overlap-add of unaligned grains would smear them (-11 to -15 dB instead of > +20 dB)."""
    t = np.arange(32000) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 7000 // f0)).astype(np.float32)
    y = pitch_shift(x, cents)[2000:-2000]
    assert harmonic_to_rest_db(y, f0 * 2 ** (cents / 1200)) > 20


def test_pitch_shift_per_row_and_zero_is_identity():
    x = np.stack([tone(300), tone(300)])
    y = pitch_shift(x, [0.0, 200.0])
    assert np.array_equal(y[0], x[0]) and peak_hz(y[1]) == pytest.approx(300 * 2 ** (1 / 6), rel=0.003)


# ------------------------------------------------------------------------------------------------- band reject


def test_band_reject_removes_its_band_and_keeps_the_rest():
    x = tone(500) + tone(1500, phase=1) + tone(3000, phase=2)
    y = band_reject(x, 1000, 2000, SR)
    assert y.shape == x.shape
    assert amplitude_at(y, 1500) < 0.01 * amplitude_at(x, 1500)  # > 40 dB down
    for hz in (500, 3000):
        assert amplitude_at(y, hz) == pytest.approx(amplitude_at(x, hz), rel=0.02)
    assert np.array_equal(band_reject(x, 1000, 1000.5, SR), x)  # no band, no change


def test_band_reject_draws_follow_cpc2_mel_widths():
    augmenter = Augmenter(only("bandreject"), SR)
    draws = augmenter.effects["bandreject"].draw(2000, 20480, np.random.default_rng(0))
    mel = lambda hz: 2595 * np.log10(1 + hz / 700)
    width = (mel(draws["high"]) - mel(draws["low"])) / mel(SR / 2)
    assert width.min() >= 0 and width.max() <= 27 / 256 + 1e-9 and width.max() > 0.9 * 27 / 256
    assert draws["low"].min() >= 0 and draws["high"].max() <= SR / 2 + 1e-6


# ------------------------------------------------------------------------------------------------------- reverb


def rt60_of(response, start):
    """RT60 from Schroeder's backward-integrated energy, fitted between -5 and -25 dB (T20 x 3)."""
    energy = np.cumsum(response[start:][::-1] ** 2)[::-1]
    decay = 10 * np.log10(energy / energy[0])
    fit = np.flatnonzero((decay <= -5) & (decay >= -25))
    slope = np.polyfit(fit / SR, decay[fit], 1)[0]
    return -60 / slope


@pytest.mark.parametrize("rt60", [0.3, 0.7])
def test_reverb_tail_decays_at_the_asked_rt60(rt60):
    rir = synthetic_rir(rt60, drr_db=0.0, sample_rate=SR, rng=np.random.default_rng(1), onset_ms=5)
    impulse = np.zeros(2 * SR, dtype=np.float32)
    impulse[0] = 1
    out = reverb(impulse, rir, keep_rms=False)
    assert out.shape == impulse.shape and out[0] == pytest.approx(1, abs=1e-4)  # direct path, no delay
    assert np.sum(out[1:] ** 2) == pytest.approx(1, rel=0.01)  # DRR 0 dB: tail energy = direct energy
    assert rt60_of(out, 80) == pytest.approx(rt60, rel=0.1)


def test_reverb_damping_shortens_the_high_frequencies():
    rir = synthetic_rir(0.6, 0.0, SR, np.random.default_rng(2), damping=0.5)
    low = band_reject(rir, 1000, SR / 2, SR, transition_hz=100)  # keep < 1 kHz
    high = band_reject(rir, 0, 5000, SR, transition_hz=100)  # keep > 5 kHz
    assert rt60_of(low, 80) == pytest.approx(0.6, rel=0.12)
    assert rt60_of(high, 80) < 0.8 * 0.6


def test_augmenter_reverb_uses_the_configured_decay():
    augmenter = Augmenter(only("reverb", reverb_rt60_s=(0.4, 0.4), reverb_drr_db=(-20.0, -20.0),
                               reverb_damping=0.0), SR)
    impulse = np.zeros((3, SR), dtype=np.float32)
    impulse[:, 0] = 1
    out = augmenter(impulse, np.random.default_rng(0))
    for row in out:
        assert rt60_of(row, 200) == pytest.approx(0.4, rel=0.1)
        assert row[0] > 0 and np.abs(row[1:32]).max() < 1e-3 * row[0]  # direct path at 0, tail from >= 2 ms
    x = speechlike()
    y = augmenter(x, np.random.default_rng(0))
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-3)  # level kept


# ------------------------------------------------------------------------------------------------ additive noise


def snr_db(clean, noisy):
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


def test_add_noise_lands_at_the_asked_snr():
    x = speechlike()
    noise = np.random.default_rng(0).standard_normal((2, len(x))).astype(np.float32)
    y = add_noise(np.stack([x, x]), noise, [0.0, 17.5])
    assert snr_db(x, y[0]) == pytest.approx(0, abs=0.01) and snr_db(x, y[1]) == pytest.approx(17.5, abs=0.01)
    assert np.array_equal(add_noise(np.zeros(100, np.float32), np.ones(100, np.float32), 10), np.zeros(100))


@pytest.mark.parametrize("colour, exponent", [("white", 0), ("pink", 1), ("brown", 2)])
def test_coloured_noise_has_its_spectral_slope(colour, exponent):
    noise = coloured_noise(colour, 1 << 16, np.random.default_rng(0))
    assert noise.dtype == np.float32 and np.sqrt(np.mean(noise**2)) == pytest.approx(1, rel=1e-3)
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequency = np.fft.rfftfreq(len(noise), 1 / SR)
    keep = (frequency > 50) & (frequency < 6000)
    slope = np.polyfit(np.log10(frequency[keep]), np.log10(power[keep]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.1)


def test_augmenter_noise_snr_within_the_configured_range():
    augmenter = Augmenter(only("noise", noise_snr_db=(7.0, 7.0)), SR)
    x = np.stack([speechlike(s) for s in range(4)])
    y = augmenter(x, np.random.default_rng(0))
    for clean, noisy in zip(x, y):
        assert snr_db(clean, noisy) == pytest.approx(7, abs=0.01)


def write_noise_folder(folder):
    folder.mkdir()
    t8 = np.arange(8000 * 2) / 8000  # 2 s at 8 kHz, stereo: a 440 Hz hum
    sf.write(folder / "hum.wav", np.stack([np.sin(2 * np.pi * 440 * t8)] * 2, axis=1) * 0.3, 8000)
    t44 = np.arange(44100) / 44100  # 1 s at 44.1 kHz in FLAC: 1 kHz whine
    (folder / "sub").mkdir()
    sf.write(folder / "sub" / "whine.flac", 0.2 * np.sin(2 * np.pi * 1000 * t44), 44100)
    sf.write(folder / "silence.wav", np.zeros(1000), 16000)
    (folder / "README").write_text("not audio")


def test_noise_folder_is_read_resampled_and_mixed(tmp_path):
    folder = tmp_path / "noise"
    write_noise_folder(folder)
    recordings = NoiseRecordings(folder, SR)
    assert recordings.files == 2 and recordings.seconds == pytest.approx(3.0, abs=0.01)
    assert sorted(recordings.skipped) == ["README", "silence.wav"]
    hums = [recordings.crop(SR, p) for p in range(0, len(recordings.audio), 4000)]
    assert {round(peak_hz(c)) for c in hums} == {440, 1000}  # pitch kept: resampled, not reinterpreted
    long = recordings.crop(3 * SR, 0)  # longer than either file: loops inside one file
    assert len(long) == 3 * SR and round(peak_hz(long)) in (440, 1000)
    augmenter = Augmenter(only("noise", noise_dir=str(folder), noise_recorded_prob=1.0, noise_colours=(),
                               noise_snr_db=(3.0, 3.0)), SR)
    x = speechlike()
    y = augmenter(x, np.random.default_rng(0))
    assert snr_db(x, y) == pytest.approx(3, abs=0.01)
    assert round(peak_hz(y - x)) in (440, 1000)


def test_noise_folder_without_audio_is_a_clear_error(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="holds no audio"):
        NoiseRecordings(folder, SR)


# ------------------------------------------------------------------------------------------------- time dropout


def test_time_dropout_zeroes_spans_of_the_asked_length_and_nothing_else():
    x = np.random.default_rng(0).uniform(0.1, 1, (6, 20480)).astype(np.float32)  # no zeros of its own
    augmenter = Augmenter(only("dropout", dropout_ms=(25.0, 25.0)), SR)
    y = augmenter(x, np.random.default_rng(1))
    for before, after in zip(x, y):
        zero = np.flatnonzero(after == 0)
        assert len(zero) == 400 and zero[-1] - zero[0] == 399  # one run of 25 ms
        keep = after != 0
        assert np.array_equal(after[keep], before[keep])
    two = time_dropout(np.ones((1, 1000), np.float32), [[100, 500]], [[10, 20]])
    assert np.flatnonzero(two[0] == 0).tolist() == list(range(100, 110)) + list(range(500, 520))


# ------------------------------------------------------------------------------- identity, determinism, stage


def windows(count=20, samples=4800):
    return [{"key": f"u{i}", "wav": speechlike(i, samples / SR), "speaker": "s"} for i in range(count)]


def test_everything_off_is_the_identity():
    items = windows(3)
    assert not AugmentConfig().enabled  # the default: past and future both off
    out = list(augment_items(iter(items), "wav", "wav_future", Augmenter(AugmentConfig(reverb_rirs=4)), random.Random(0)))
    assert out == items and all("wav_future" not in item for item in out)
    silent = AugmentConfig(past=True, future=True, **{f"{e}_prob": 0.0 for e in EFFECTS})
    assert not silent.enabled
    assert list(augment_items(iter(items), "wav", "wav_future", Augmenter(silent), random.Random(0))) == items
    x = speechlike()
    assert np.array_equal(Augmenter(silent)(x, np.random.default_rng(0)), x)


def default_chain(**changes):
    return AugmentConfig(**{"past": True, "reverb_rirs": 8, "bandreject_prob": 0.5, "dropout_prob": 0.5, **changes})


def test_same_seed_same_output_other_seed_other_output():
    augmenter = Augmenter(default_chain(), SR)
    x = np.stack([speechlike(s) for s in range(4)])
    a = augmenter(x, np.random.default_rng(5))
    assert np.array_equal(a, augmenter(x, np.random.default_rng(5)))
    assert np.array_equal(a, Augmenter(default_chain(), SR)(x, np.random.default_rng(5)))  # banks rebuild alike
    assert not np.allclose(a, augmenter(x, np.random.default_rng(6)))
    assert not np.allclose(a[0], a[1])  # every row draws its own parameters
    seeded = lambda seed: numpy_rng(random.Random(seed)).random(3)
    assert np.array_equal(seeded("1/0/0/7"), seeded("1/0/0/7")) and not np.array_equal(seeded(1), seeded(2))


def run_stage(config, seed=0):
    return list(augment_items(iter(windows()), "wav", "wav_future", Augmenter(config, SR), random.Random(seed), chunk=8))


@pytest.mark.parametrize("past, future", [(True, False), (False, True), (True, True)])
def test_stage_fields_follow_past_and_future(past, future):
    clean = windows()
    out = run_stage(default_chain(past=past, future=future))
    assert [item["key"] for item in out] == [item["key"] for item in clean]  # every window, in order
    for item, original in zip(out, clean):
        assert item["wav"].shape == item["wav_future"].shape == original["wav"].shape
        assert item["wav"].dtype == item["wav_future"].dtype == np.float32
        assert np.array_equal(item["wav"], original["wav"]) != past
        assert np.array_equal(item["wav_future"], original["wav"]) != future
        if past and future:  # independent draws, as in CPC2
            assert not np.allclose(item["wav"], item["wav_future"])
        assert item["speaker"] == "s"
    assert np.array_equal(clean[0]["wav"], windows(1)[0]["wav"])  # the input items are not modified


def test_stage_reproduces_from_the_stream_rng():
    config = default_chain(future=True)
    a, b, c = run_stage(config, "7/0/0/100"), run_stage(config, "7/0/0/100"), run_stage(config, "7/0/0/101")
    for x, y in zip(a, b):
        assert np.array_equal(x["wav"], y["wav"]) and np.array_equal(x["wav_future"], y["wav_future"])
    assert not all(np.array_equal(x["wav"], z["wav"]) for x, z in zip(a, c))


def test_torch_batches_in_torch_batches_out():
    augmenter = Augmenter(default_chain(), SR)
    x = torch.from_numpy(np.stack([speechlike(s, 0.5) for s in range(3)]))
    y = augmenter(x, np.random.default_rng(0))
    assert isinstance(y, torch.Tensor) and y.shape == x.shape and y.dtype == torch.float32
    assert np.array_equal(y.numpy(), augmenter(x.numpy(), np.random.default_rng(0)))
    one = pitch_shift(x[0], 100.0)
    assert isinstance(one, torch.Tensor) and one.shape == x[0].shape


def test_one_effect_per_window_as_cpc_v2():
    """combine 'one': each row gets exactly one of the effects (here: dropout or a big gain-free band reject)."""
    config = AugmentConfig(past=True, combine="one", pitch_prob=0.0, noise_prob=0.0, reverb_prob=0.0,
                           bandreject_prob=1.0, bandreject_width=(0.5, 0.5), dropout_prob=1.0, dropout_ms=(50.0, 50.0))
    x = np.random.default_rng(0).uniform(0.1, 1, (40, 4000)).astype(np.float32)
    y = Augmenter(config, SR)(x, np.random.default_rng(0))
    dropped = (y == 0).sum(axis=1) == 800
    untouched_outside_dropout = np.array([np.array_equal(a[b != 0], b[b != 0]) for a, b in zip(x, y)])
    assert np.array_equal(dropped, untouched_outside_dropout)  # dropout rows had nothing else done to them
    assert 10 < dropped.sum() < 30  # about half each


def test_the_default_chain_keeps_length_and_level():
    augmenter = Augmenter(AugmentConfig(past=True, reverb_rirs=8), SR)
    x = np.stack([speechlike(s) for s in range(4)])
    y = augmenter(x, np.random.default_rng(0))
    assert y.shape == x.shape and np.isfinite(y).all()
    ratio = np.sqrt(np.mean(y**2, axis=1) / np.mean(x**2, axis=1))
    assert ((ratio > 0.8) & (ratio < 1.5)).all()  # noise at >= 5 dB SNR adds at most ~ +1.2 dB


# ------------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("key, value, message", [
    ("pitch_prob", 1.5, r"augment\.pitch_prob: a probability must lie in \[0, 1\]"),
    ("noise_prob", -0.1, r"augment\.noise_prob"),
    ("pitch_cents", (300.0, -300.0), r"augment\.pitch_cents: expected \[min, max\] with -1200 cents <= min"),
    ("reverb_rt60_s", (0.0, 0.5), r"augment\.reverb_rt60_s: .*0\.05 s <= min <= max <= 3\.0 s"),
    ("noise_snr_db", (5.0,), r"augment\.noise_snr_db"),
    ("bandreject_width", (0.0, 2.0), r"augment\.bandreject_width"),
    ("dropout_spans", -1, r"augment\.dropout_spans: expected 0 <= spans <= 100"),
    ("reverb_damping", 1.0, r"augment\.reverb_damping"),
    ("noise_colours", ("white", "purple"), r"augment\.noise_colours: colours are white, pink, brown"),
    ("noise_dir", "/no/such/folder", r"augment\.noise_dir: expected an existing folder"),
    ("combine", "all", r"augment\.combine: choose 'chain'"),
])
def test_bad_config_values_name_the_key_and_the_range(key, value, message):
    with pytest.raises(ConfigError, match=message):
        Augmenter(AugmentConfig(past=True, **{key: value}), SR)


def test_noise_needs_a_source():
    with pytest.raises(ConfigError, match=r"augment\.noise_colours: noise_prob > 0 needs noise"):
        Augmenter(AugmentConfig(noise_colours=()), SR)


def test_bad_waveform_shapes_are_named():
    with pytest.raises(ValueError, match=r"\(samples,\) or \(batch, samples\)"):
        pitch_shift(np.zeros((1, 2, 3), np.float32), 100)
    with pytest.raises(ValueError, match="noise shape"):
        add_noise(np.zeros((2, 10), np.float32), np.zeros((2, 11), np.float32), 5)


def test_noise_folder_keeps_at_most_max_seconds(tmp_path):
    folder = tmp_path / "noise"
    write_noise_folder(folder)
    with pytest.warns(RuntimeWarning, match="noise_max_seconds = 1.5 reached"):
        recordings = NoiseRecordings(folder, SR, max_seconds=1.5)
    assert recordings.seconds == pytest.approx(1.5, abs=1e-3)
