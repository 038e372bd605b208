"""Noise recordings for the additive-noise effect: every file of a folder that soundfile reads, mono, resampled to
the stream's rate and kept in memory as peak-normalised int16, cropped at random positions.
"""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from cpc.data.augment.signal import cyclic


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
        return cyclic(clip, position - int(self.bounds[file]), samples).astype(np.float32) * np.float32(1 / 32767)

