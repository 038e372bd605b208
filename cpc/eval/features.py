"""Frame-level features from a trained CPC model: one vector per encoder frame (10 ms by default), exactly
`samples // hop` frames.

Three ways, all giving the same frames (within float rounding):
- `extract(model, wav)`: one utterance at once;
- `extract_batch(model, wavs)`: several utterances padded into one batch (zeros past an utterance's end are
  exactly what whole-utterance encoding pads with, and every part of the model is causal or frame-local);
- `FeatureStream(model)`: pushing audio chunk by chunk (live audio, or hour-long files in bounded memory),
  the encoder's receptive-field context, the input preparation's carry (running sums, a log-mel front end's
  partial window) and g_ar's state carried across chunks.

Inputs are normalised as in training (`model.config.input_norm`). "causal" (the presets) needs nothing from the
future, so batches and streams normalise as the model does. "window" (checkpoints before `input_norm` existed)
standardises with the utterance's own mean and standard deviation: batches compute them per utterance before
padding, and a stream, which cannot see the future, takes them as `stats` (from the file, or from a calibration
stretch of live audio: `utterance_stats`).

Each way takes `precision` ("fp32", or "bf16" autocast) and works unchanged with a model whose encoder runs in
int8 (`cpc.models.int8.int8_model`): the fastest CPU extraction.

A whole corpus goes through `extract_corpus`, which checks its settings before the first file and skips (and
counts) what cannot be encoded; `read_files` reads audio files the same way (cpc.eval.feature_outputs writes the
results).

Long recordings in bounded memory: by default a recording longer than `LONG_SECONDS` is streamed in chunks that
long (`StreamedFeatures`); read from a file, it is also read in blocks (`LongRecording`, after a first cheap pass
that checks its samples and computes the mean and std a "window" model standardises with), and `save_npy`
writes its frames piece by piece, so peak memory no longer grows with the file's length.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from cpc.data.ingest import AudioItem, NonFiniteAudio, audio_blocks, load_audio, open_audio_file
from cpc.data.stages import SkipCounter
from cpc.errors import UserError
from cpc.models.cpc import OFFLINE_LAYERS, CPCModel, check_layer, select_layer
from cpc.models.int8 import check_int8, int8_model

PRECISIONS = ("fp32", "bf16")
CALIBRATION_UTTERANCES = 8  # int8 scales come from this many first utterances (or a batch, if larger)
LONG_SECONDS = 30.0  # by default, longer recordings are streamed in chunks this long (about 0.5 GB of activations)


def float_math(precision: str, device: torch.device):
    """The context extraction computes in: bf16 autocast, or plain fp32 (int8 encoders are not affected)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def utterance_stats(wav: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """(mean, std) of one utterance, as the "window" input standardisation computes them."""
    wav = torch.as_tensor(wav, dtype=torch.float32)
    return float(wav.mean()), float(wav.std(unbiased=False))


@torch.no_grad()
def extract_batch(model: CPCModel, wavs: Sequence[np.ndarray | torch.Tensor], layer: str = "c",
                  precision: str = "fp32") -> list[torch.Tensor]:
    """Features (frames, dim) for each waveform (samples,), computed as one zero-padded batch; float32 out."""
    check_layer(layer)  # a bad layer name fails before any work
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(w) for w in wavs]
    if min(lengths) < model.hop:
        raise ValueError(f"every waveform needs at least {model.hop} samples (one frame); got {min(lengths)}")
    batch = torch.zeros(len(wavs), max(lengths), device=device)
    window = model.config.resolved_input_norm == "window"
    for row, (wav, length) in enumerate(zip(wavs, lengths)):
        wav = torch.as_tensor(wav, dtype=torch.float32, device=device)
        if window:  # the statistics of the utterance alone, not of its padding
            mean, std = utterance_stats(wav)
            wav = (wav - mean) / (std + 1e-5)
        batch[row, :length] = wav  # zeros after the end, as whole-utterance encoding pads
    if not window:  # "causal": a sample sees only earlier ones, so padding after it changes nothing; or "none"
        batch = model.prepare(batch)
    with float_math(precision, device):
        z = model.encoder(batch)
        c, _ = model.ar(z)
        # Row by row, each cut to its own frames: a reverse g_ar (c_bidir) must start at the row's end, not in the
        # padding after it.
        return [model.select(z[row : row + 1, :frames], c[row : row + 1, :frames], layer)[0].float()
                for row, frames in enumerate(length // model.hop for length in lengths)]


def extract(model: CPCModel, wav: np.ndarray | torch.Tensor, layer: str = "c", precision: str = "fp32") -> torch.Tensor:
    """Features (samples // hop, dim) of one waveform (samples,)."""
    return extract_batch(model, [wav], layer, precision)[0]


class FeatureStream:
    """Push audio in chunks of any size, get the frames that are complete; `finish()` returns the last ones.

    Frame t needs samples up to hop t + (field - hop) / 2 + hop (the encoder looks ahead to the end of its
    receptive field), so a chunk's last few frames come out with the next chunk. Memory is bounded by the chunk
    size. `stats` (mean, std) is used by "window" models only (see `utterance_stats`); "causal" ones carry their
    running RMS across chunks and need none.
    """

    def __init__(self, model: CPCModel, stats: tuple[float, float] = (0.0, 1.0), layer: str = "c",
                 precision: str = "fp32"):
        check_layer(layer)
        if layer in OFFLINE_LAYERS:
            raise ValueError(f"feature layer {layer!r} sees the whole utterance (its reverse context starts at the "
                             "end): it cannot be streamed; stream c, z or both, or extract whole files")
        if model.config.encoder.norm == "instance":
            raise ValueError("instance norm uses whole-sequence statistics: a model with it cannot be streamed")
        self.model, self.layer = model.eval(), layer
        self.device = next(model.parameters()).device
        float_math(precision, self.device)  # a bad precision fails here, not at the first chunk
        self.precision = precision
        self.stats = stats
        self.carry = None  # the input adapter's: e.g. "causal"'s running sum of squares and sample count so far
        encoder = model.encoder
        self.hop, self.field = encoder.hop, encoder.field  # in prepared input steps (samples, log-mel frames)
        self.buffer = None  # prepared input, from the left edge's zero padding on (made at the first chunk)
        self.pad_left, self.pad_right = encoder.pad_left, encoder.pad_right
        self.state = None
        self.samples = 0
        self.frames = 0

    @torch.no_grad()
    def push(self, chunk: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Frames completed by this chunk: (frames, dim), possibly zero frames."""
        chunk = torch.as_tensor(chunk, dtype=torch.float32, device=self.device).reshape(1, -1)
        self.samples += chunk.shape[1]
        chunk, self.carry = self.model.inputs.prepare_chunk(chunk, self.carry, self.stats)
        if self.buffer is None:
            self.buffer = chunk.new_zeros(1, self.pad_left, *chunk.shape[2:])
        self.buffer = torch.cat([self.buffer, chunk], dim=1)
        return self.encode(self.samples // self.model.hop)

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """The remaining frames, with the right edge's zero padding: afterwards exactly samples // hop in all."""
        if self.buffer is None:  # nothing pushed
            return torch.zeros(0, self.dim(), device=self.device)
        self.buffer = torch.cat([self.buffer, self.buffer.new_zeros(1, self.pad_right, *self.buffer.shape[2:])], dim=1)
        return self.encode(self.samples // self.model.hop)

    def encode(self, total_frames: int) -> torch.Tensor:
        ready = min((self.buffer.shape[1] - self.field) // self.hop + 1, total_frames - self.frames)
        if ready <= 0:
            return torch.zeros(0, self.dim(), device=self.device)
        with float_math(self.precision, self.device):
            z = self.model.encoder.encode_padded(self.buffer[:, : (ready - 1) * self.hop + self.field])
            c, self.state = self.model.ar(z, self.state)
        self.buffer = self.buffer[:, ready * self.hop :]
        self.frames += ready
        return select_layer(z, c, self.layer)[0].float()

    def dim(self) -> int:
        return self.model.layer_dim(self.layer)


def extract_chunked(model: CPCModel, wav: np.ndarray | torch.Tensor, chunk_samples: int, layer: str = "c",
                    precision: str = "fp32") -> torch.Tensor:
    """`extract` through a FeatureStream, `chunk_samples` at a time: bounded memory for hour-long files."""
    return StreamedFeatures(model, wav, chunk_samples, layer, precision).array()


@dataclass
class LongRecording:
    """A recording read from its file in blocks instead of whole: `samples` at the model's rate, and the (mean,
    std) a first pass over it found (what "window" models standardise with)."""

    path: str
    samples: int
    stats: tuple[float, float]

    def __len__(self) -> int:
        return self.samples

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """Its samples, `size` at a time."""
        return audio_blocks(self.path, size)


def scan_recording(path: str, block: int) -> LongRecording:
    """The first, cheap pass over a long file (no model), `block` samples at a time: its length and (mean, std);
    NonFiniteAudio if any sample is NaN or infinite, before any frame is computed."""
    count, total, squares = 0, 0.0, 0.0
    for samples in audio_blocks(path, block):
        count += len(samples)
        total += float(samples.sum(dtype=np.float64))
        squares += float(np.square(samples, dtype=np.float64).sum())
    mean = total / max(count, 1)
    return LongRecording(path, count, (mean, math.sqrt(max(squares / max(count, 1) - mean**2, 0.0))))


class StreamedFeatures:
    """The (frames, dim) features of one long recording (a waveform or a LongRecording), computed through a
    FeatureStream `chunk_samples` at a time while they are iterated: pieces of (some frames, dim), `frames` in all
    (samples // hop, known before any is computed). Iterating again computes them again."""

    def __init__(self, model: CPCModel, wav: np.ndarray | torch.Tensor | LongRecording, chunk_samples: int,
                 layer: str = "c", precision: str = "fp32"):
        self.model, self.wav, self.chunk_samples = model, wav, chunk_samples
        self.layer, self.precision = layer, precision
        self.frames = len(wav) // model.hop

    @property
    def dim(self) -> int:
        return FeatureStream.dim(self)  # what a stream of this model and layer gives

    def __iter__(self) -> Iterator[torch.Tensor]:
        wav, size = self.wav, self.chunk_samples
        window = self.model.config.resolved_input_norm == "window"
        stats = (wav.stats if isinstance(wav, LongRecording) else utterance_stats(wav)) if window else (0.0, 1.0)
        stream = FeatureStream(self.model, stats, self.layer, self.precision)
        if isinstance(wav, LongRecording):
            chunks = wav.blocks(size)
        else:
            wav = torch.as_tensor(wav, dtype=torch.float32)
            chunks = (wav[start : start + size] for start in range(0, len(wav), size))
        for chunk in chunks:
            yield stream.push(chunk)
        yield stream.finish()

    def array(self) -> torch.Tensor:
        """All frames at once: (frames, dim)."""
        return torch.cat(list(self))


class ExtractError(UserError, ValueError):
    """Extraction settings that cannot work with this model, or an output folder that holds earlier results."""


def min_chunk_samples(model: CPCModel) -> int:
    """The shortest chunk worth streaming: one frame's receptive field (the encoder's context), in whole hops.
    Shorter chunks give the same frames, but at one encoder call per few samples (0.001 s: 24 s per utterance)."""
    return -(-model.field // model.hop) * model.hop


def extract_corpus(model: CPCModel, utterances: Iterable, layer: str = "c", batch: int = 8, chunk_samples: int = 0,
                   precision: str = "fp32", int8: bool = False, skips: SkipCounter | None = None):
    """(key, wav) pairs -> (key, features) pairs in the same order: batched with padding, and recordings longer
    than `chunk_samples` (> 0) as StreamedFeatures, computed in chunks that long when iterated (bounded memory for
    very long recordings; `save_npy` writes them, `features_array` joins them). `wav` may be a LongRecording
    (`read_files`). `int8`: the encoder runs
    in int8 (cpc.models.int8), its scales calibrated on the first utterances (at most a minute of them).
    Bad arguments fail here, before the first utterance is read; utterances shorter than one frame are left out
    and counted in `skips`."""
    check_layer(layer)
    float_math(precision, torch.device("cpu"))
    if batch < 1:
        raise ExtractError(f"a batch of {batch} utterances (--batch): use 1 or more")
    rate, least = model.config.sample_rate, min_chunk_samples(model)
    if chunk_samples < 0 or 0 < chunk_samples < least:
        what = ("a negative chunk length" if chunk_samples < 0 else
                f"chunks of {chunk_samples / rate:g} s ({chunk_samples} samples) cannot hold one frame's context of "
                f"{model.field} samples")
        raise ExtractError(f"{what} (--chunk-seconds): use 0 (whole files) or at least {least / rate:g} s "
                           f"({least} samples)")
    if int8:
        try:
            check_int8(model)
        except (ValueError, RuntimeError) as error:  # "what: how to fix" -> "what (--int8): how to fix"
            what, _, fix = str(error).rpartition(": ")
            raise ExtractError(f"{what} (--int8): {fix}" if what else f"{error} (--int8)") from None
    skips = SkipCounter() if skips is None else skips
    return extracted_corpus(model, iter(utterances), layer, batch, chunk_samples, precision, int8, skips)


def read_files(items: Iterable[AudioItem], sample_rate: int, skips: SkipCounter,
               long_samples: int = 0) -> Iterator[tuple[str, np.ndarray | LongRecording]]:
    """(key, waveform at `sample_rate`) of each audio file that reads; the others, and those holding NaN or
    infinite samples, are counted in `skips`, with why, and left out. With `long_samples` > 0, a file longer than
    that at `sample_rate` comes as a LongRecording, read in blocks later (whole if it must be resampled)."""
    for item in items:
        try:
            yield item.key, read_recording(item.path, sample_rate, long_samples)
        except NonFiniteAudio as error:
            skips.skip("non-finite samples (NaN or Inf)", str(error).removeprefix("cannot read audio "))
        except ValueError as error:
            skips.skip("unreadable audio", str(error).removeprefix("cannot read audio "))


def read_recording(path: str, sample_rate: int, long_samples: int = 0) -> np.ndarray | LongRecording:
    """One file as a waveform at `sample_rate`, or, when longer than `long_samples` (> 0) and at that rate
    already, as a LongRecording (its first pass done)."""
    if long_samples > 0:
        with open_audio_file(path) as file:
            samples, rate = file.frames, file.samplerate
        if rate == sample_rate and samples > long_samples:
            return scan_recording(path, long_samples)
    return load_audio(path, sample_rate)


def save_npy(path: str | Path, features: torch.Tensor | StreamedFeatures, dtype=np.float32) -> None:
    """Features as a .npy file of `dtype`; StreamedFeatures are computed and written piece by piece (bounded
    memory). Written under a temporary name, then renamed: an interrupted extraction leaves no partial array."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        if isinstance(features, StreamedFeatures):
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                      "shape": (features.frames, features.dim)}
            np.lib.format.write_array_header_1_0(file, header)
            written = 0
            for piece in features:
                file.write(np.ascontiguousarray(piece.cpu().numpy().astype(dtype)).tobytes())
                written += len(piece)
            if written != features.frames:  # the header promised `frames`: a file that changed between passes
                partial.unlink()
                raise ValueError(f"{path}: {written} frames computed, {features.frames} expected (did the recording "
                                 "change while it was read?)")
        else:
            np.save(file, features.cpu().numpy().astype(dtype), allow_pickle=False)
    os.replace(partial, path)


def features_array(features: torch.Tensor | StreamedFeatures, dtype=np.float32) -> np.ndarray:
    """Features as one (frames, dim) array of `dtype` (StreamedFeatures computed whole)."""
    features = features.array() if isinstance(features, StreamedFeatures) else features
    return features.cpu().numpy().astype(dtype)


def whole(wav: np.ndarray | torch.Tensor | LongRecording) -> np.ndarray | torch.Tensor:
    """A waveform in memory: a LongRecording read whole (what encoding whole files needs)."""
    return np.concatenate(list(wav.blocks(1 << 20))) if isinstance(wav, LongRecording) else wav


def streamable(model: CPCModel, layer: str = "c") -> bool:
    """Whether a FeatureStream gives this model's `layer` chunk by chunk: FeatureStream's own refusals (e.g. instance
    norm, which needs the whole input) are the one rule; such a model encodes every recording whole."""
    try:
        FeatureStream(model, layer=layer)  # cheap: nothing is encoded
    except ValueError:
        return False
    return True


def extracted_corpus(model, utterances, layer, batch, chunk_samples, precision, int8, skips):
    utterances = long_enough(utterances, model.hop, skips)
    chunk_samples = chunk_samples if streamable(model, layer) else 0
    if int8:
        head = list(itertools.islice(utterances, max(batch, CALIBRATION_UTTERANCES)))
        if head:  # int8_model reads at most a minute: a long recording's first block is enough
            rate = model.config.sample_rate
            model = int8_model(model, [next(wav.blocks(60 * rate)) if isinstance(wav, LongRecording) else wav
                                       for _, wav in head])
        utterances = itertools.chain(head, utterances)
    pending: list[tuple[str, torch.Tensor]] = []

    def flush():
        features = extract_batch(model, [wav for _, wav in pending], layer, precision)
        return list(zip([key for key, _ in pending], features))

    for key, wav in utterances:
        if 0 < chunk_samples < len(wav):  # a long recording: streamed (after the batch before it, to keep order)
            if pending:
                yield from flush()
                pending = []
            yield key, StreamedFeatures(model, wav, chunk_samples, layer, precision)
            continue
        pending.append((key, whole(wav)))
        if len(pending) == batch:
            yield from flush()
            pending = []
    if pending:
        yield from flush()


def long_enough(utterances: Iterator, hop: int, skips: SkipCounter) -> Iterator:
    """The (key, wav) pairs with at least one frame (`hop` samples); shorter ones are counted in `skips`."""
    for key, wav in utterances:
        if len(wav) < hop:
            skips.skip(f"shorter than one frame ({hop} samples)", key)
            continue
        yield key, wav
