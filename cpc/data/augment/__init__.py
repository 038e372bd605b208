"""Time-domain waveform augmentation for CPC, after CPC2 (Kharitonov et al. 2021, "Data Augmenting Contrastive
Learning of Speech Representations in the Time Domain"). Every effect keeps the length, so 10 ms frames stay
aligned with their labels and with the clean window, and every random draw comes from a generator the caller
passes. The parts: `registry` (what an effect is, the registry), `effects` (the built-in effects and their
registry lines), `config` (AugmentConfig and its check), `signal` and `pitch` (the DSP), `recordings` (noise
files), `stage` (the Augmenter and the stream stage). This module gathers the public names.

    augmenter = Augmenter(AugmentConfig(past=True), sample_rate=16000)
    windows = augment_items(windows, "wav", "wav_future", augmenter, rng)   # "wav" augmented, "wav_future" clean
"""

from cpc.data.augment.config import AugmentConfig, check_augment_config
from cpc.data.augment.pitch import pitch_shift
from cpc.data.augment.recordings import NoiseRecordings
from cpc.data.augment.registry import EFFECTS, Effect, SettingChecks, register_effect
from cpc.data.augment.signal import (COLOURS, add_noise, band_reject, coloured_noise, reverb, synthetic_rir,
                                     time_dropout)
from cpc.data.augment.stage import AugmentStage, Augmenter, augment_items, numpy_rng

__all__ = ["AugmentConfig", "check_augment_config", "pitch_shift", "NoiseRecordings", "EFFECTS", "Effect",
           "SettingChecks", "register_effect", "COLOURS", "add_noise", "band_reject", "coloured_noise", "reverb",
           "synthetic_rir", "time_dropout", "AugmentStage", "Augmenter", "augment_items", "numpy_rng"]
