"""The augmenter and the stream stage. `Augmenter` runs the registered effects on rows of windows, each with its
probability and parameters drawn per row from the generator passed to the call, so equal generator states give
identical output and a resumed stream repeats itself. `augment_items` gives each window the version the context
network sees (field) and the one the target and negative frames come from (target_field); `AugmentStage` is that
stage as a stream transform, its Augmenter built inside the worker that runs it.

    augmenter = Augmenter(AugmentConfig(past=True), sample_rate=16000)
    windows = augment_items(windows, "wav", "wav_future", augmenter, rng)   # "wav" augmented, "wav_future" clean
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Iterator

import numpy as np

from cpc.data.augment.config import AugmentConfig
from cpc.data.augment.registry import Effect
from cpc.data.augment.signal import as_rows


def numpy_rng(rng: random.Random) -> np.random.Generator:
    """A numpy generator seeded from (and advancing) the stream's `random.Random`: same state, same draws."""
    return np.random.default_rng(rng.getrandbits(128))


class Augmenter:
    """The configured chain (by default pitch -> noise -> reverb -> band reject -> dropout): the effects with a
    probability above 0, their banks (coloured noise, RIR tails, recordings) built here once from config.bank_seed."""

    def __init__(self, config: AugmentConfig = AugmentConfig(), sample_rate: int = 16000):
        config.check()
        self.config, self.sample_rate = config, sample_rate
        bank = np.random.default_rng(config.bank_seed)
        self.effects: dict[str, Effect] = {
            effect.name: effect(config, sample_rate, bank)
            for effect in config.effects() if effect.probability_of(config) > 0
        }

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def __call__(self, wav, rng: np.random.Generator):
        """An augmented copy of wav ((samples,) or (batch, samples), numpy or torch): one independent draw per row."""
        rows, back = as_rows(wav)
        return back(self.rows(rows, rng))

    def rows(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(batch, samples) float32 -> augmented copy. The draws per row do not depend on which effects fire."""
        count, samples = rows.shape
        active = list(self.effects.values())
        picked = rng.integers(0, len(active), count) if self.config.combine == "one" and active else None
        out = rows.copy()
        for index, effect in enumerate(active):
            fire = rng.random(count) < effect.probability
            fire = np.flatnonzero(fire if picked is None else fire & (picked == index))
            params = effect.draw(count, samples, rng)
            if fire.size:
                out[fire] = effect.apply(out[fire], {key: value[fire] for key, value in params.items()})
        return out


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


class AugmentStage:
    """The augmentation stage of a training stream: windows in, windows with `field` (what c_t sees) and
    `target_field` (what the targets come from) out. The Augmenter (noise recordings, impulse responses) is built
    on first use, inside the worker that runs the stream, and kept for the worker's later pipelines."""

    def __init__(self, config: AugmentConfig, sample_rate: int, field: str, target_field: str):
        self.config, self.sample_rate, self.augmenter = config, sample_rate, None
        self.field, self.target_field = field, target_field

    def __call__(self, windows: Iterator[dict[str, Any]], rng: random.Random) -> Iterator[dict[str, Any]]:
        if self.augmenter is None:
            self.augmenter = Augmenter(self.config, self.sample_rate)
        return augment_items(windows, self.field, self.target_field, self.augmenter, rng)
