"""Input adapters, one per input kind: raw audio ("waveform"), log-mel frames ("logmel") and video frames
("video"). An adapter owns what is particular to its kind: the batch field the model reads and the one the other
(augmented) version of a window arrives in, the checks on an input's shape and the units messages count it in,
the preparation (input normalisation, log-mel frames), the hop (input steps per model frame), the g_enc it feeds,
the throughput unit, and the carry that prepares a stream chunk by chunk as one call prepares the whole input.
CPCModel holds one (`model.inputs`) and never branches on the kind; neither do the CPC method and the extractors.
A new input kind is one class here and its name in INPUT_KINDS.

Which adapter a config gets: `modality: video` -> "video"; `modality: audio` -> its `frontend`, "waveform" unless
the config says "logmel", so every config written before `frontend` existed keeps the raw-audio encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from cpc.models.encoders import (ConvEncoder, FrameEncoder, LogMelFrames, causal_normalize, causal_standardize,
                                 standardize, standardize_frames)

MODALITIES = ("audio", "video")
FRONTENDS = ("waveform", "logmel")  # how an audio model reads its waveform (config key `frontend`)
INPUT_NORMS = ("window", "causal", "none")


@dataclass
class LogMelConfig:
    """The log-mel front end (`frontend: logmel`): log-mel frames of a causal window every `hop` samples (n_mels
    bands: the model config's `n_mels`), each band standardised by its running mean and variance up to the frame,
    then `encoder` (kernels 3, 3, 3, strides 1 in the presets) as causal convs over the frames."""
    hop: int = 160  # samples per log-mel frame: 10 ms at 16 kHz; the model's hop is this times the encoder strides
    window_seconds: float = 0.025
    # The running statistics start from `prior_seconds` of pseudo-frames with this mean and standard deviation (the
    # bundled synthetic speech: log-mel mean -4.7, standard deviation 4.5 over all bands), so the first frames are
    # scaled about as later ones; after 0.25 s the utterance's own frames weigh as much as the prior.
    prior_seconds: float = 0.25
    prior_mean: float = -5.0
    prior_std: float = 4.5


class InputAdapter(nn.Module):
    """What a CPCModel needs to know about its input kind; subclasses set the class attributes."""

    kind: str  # its name in INPUT_KINDS
    modality: str  # the data it reads: "audio" or "video" (the CPC method's data kind)
    input_key: str  # the batch field the model reads
    target_key: str | None  # the batch field of the version the targets come from (augmentation); None: none
    unit: str  # what one input step is called in messages
    sample_dims: int  # dimensions of one input without its batch axis
    regression_targets: tuple[str, ...]  # regression targets computed from the input ("z" works for every kind)
    int8: bool = False  # whether cpc.models.int8 can run its encoder
    hop_rule = "1"  # what sets the hop, for messages ({model}: the model config's key prefix)

    def __init__(self, config):
        super().__init__()
        self.config = config

    @classmethod
    def check_config(cls, config) -> None:
        """A ValueError naming the setting this kind cannot use."""
        if config.regression_target in REGRESSION_NEEDS and config.regression_target not in cls.regression_targets:
            can = " or ".join(repr(name) for name in ("z", *cls.regression_targets))
            raise ValueError(f"regression_target {config.regression_target!r} needs "
                             f"{REGRESSION_NEEDS[config.regression_target]}; {cls.modality} can regress {can}")

    @classmethod
    def hop_of(cls, config) -> int:
        """Input steps per model frame for `config`."""
        raise NotImplementedError

    @property
    def hop(self) -> int:
        return self.hop_of(self.config)

    @property
    def sample_rate(self) -> int | None:
        """Input steps per second (audio); None where steps are not audio samples."""
        return None

    @property
    def cells(self) -> int:
        """Sequences per input (grid cells of a video frame)."""
        return 1

    def build_encoder(self) -> nn.Module:
        """A fresh g_enc for prepared inputs."""
        raise NotImplementedError

    def check(self, x: torch.Tensor, min_steps: int = 1) -> None:
        """A ValueError saying what was expected unless x is a batch of at least `min_steps` input steps."""
        if x.shape[1] < min_steps:
            raise ValueError(f"need at least {min_steps} {self.unit}; got {x.shape[1]}")

    def as_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """An input or a batch of them -> (a batch in the dtype `check` and `prepare` take, whether x was one)."""
        single = x.dim() == self.sample_dims
        return (x[None] if single else x), single

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A checked batch -> what the encoder takes."""
        raise NotImplementedError

    def prepare_chunk(self, chunk: torch.Tensor, carry, stats: tuple[float, float]) -> tuple[torch.Tensor, object]:
        """The next chunk (1, steps) of a stream -> (its prepared part, the carry for the next chunk; None at first).
        The prepared parts of all chunks, joined, are what `prepare` gives for the whole input."""
        raise ValueError(f"{self.kind} inputs are not streamed")

    def field(self, encoder: nn.Module) -> int:
        """Input steps one model frame sees."""
        return 1

    def throughput(self, x: torch.Tensor) -> tuple[float, str]:
        """How much input a batch holds, and its unit, for the training logs."""
        raise NotImplementedError

    def logmel_frames(self) -> nn.Module:
        """prepared input -> log-mel frames aligned with z: the "logmel" regression target."""
        raise ValueError(f"{self.kind} inputs have no log-mel regression target")

    def regression_target(self, name: str, prepared: torch.Tensor) -> torch.Tensor:
        """The input-derived regression target `name` (other than "logmel"), aligned with z: (B', T, dim)."""
        raise ValueError(f"{self.kind} inputs have no {name!r} regression target")

    def regression_dim(self, name: str) -> int:
        """Features per frame of the input-derived regression target `name`."""
        return self.config.n_mels


REGRESSION_NEEDS = {"logmel": "audio", "pixels": "video"}  # input-derived regression targets and what gives them


class AudioInput(InputAdapter):
    """Waveforms (batch, samples) float in [-1, 1] at the model's sample rate."""

    modality, unit, sample_dims = "audio", "samples", 1
    input_key = "wav"  # the batch field cpc.data.audio writes (its FIELD)
    target_key = "wav_future"  # what augmentation writes the other version into (cpc.data.audio.TARGET_FIELD)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def check(self, x: torch.Tensor, min_steps: int = 1) -> None:
        if x.dim() != 2:
            raise ValueError(f"CPCModel expects a waveform of shape (batch, samples); got shape {tuple(x.shape)}")
        super().check(x, min_steps)

    def as_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        batch, single = super().as_batch(x)
        return batch.float(), single

    def throughput(self, x: torch.Tensor) -> tuple[float, str]:
        return x.numel() / self.config.sample_rate, "audio-s"


class WaveformInput(AudioInput):
    """Raw audio into ConvEncoder's strided convs, normalised by `input_norm` ("window", "causal" or "none")."""

    kind, regression_targets, int8 = "waveform", ("logmel",), True
    hop_rule = "the product of {model}encoder.strides"

    @classmethod
    def hop_of(cls, config) -> int:
        return math.prod(config.encoder.strides)

    def build_encoder(self) -> nn.Module:
        return ConvEncoder(self.config.encoder)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        kind = self.config.resolved_input_norm
        if kind == "window":
            return standardize(x)
        if kind == "causal":
            return self.causal_norm(x)[0]
        return x

    def causal_norm(self, wav: torch.Tensor, carry=None):
        """(batch, samples) -> (causally normalised rows, carry for their continuation)."""
        prior = round(self.config.input_prior_seconds * self.config.sample_rate)
        return causal_normalize(wav, self.config.input_level, prior, carry)

    def prepare_chunk(self, chunk, carry, stats):
        """"window" standardises with the utterance's `stats` (mean, std), which a stream cannot compute."""
        kind = self.config.resolved_input_norm
        if kind == "causal":
            return self.causal_norm(chunk, carry)
        if kind == "window":
            mean, std = stats
            return (chunk - mean) / (std + 1e-5), None
        return chunk, None

    def field(self, encoder: nn.Module) -> int:
        return encoder.field

    def logmel_frames(self) -> nn.Module:
        return LogMelFrames(self.config.sample_rate, self.hop, self.config.n_mels)


class LogMelInput(AudioInput):
    """Log-mel frames of a causal window (`config.logmel`), standardised per band by running statistics
    (input_norm "causal") or not at all ("none"), into ConvEncoder as causal convs over frames."""

    kind, regression_targets = "logmel", ("logmel",)
    hop_rule = "{model}logmel.hop times the product of {model}encoder.strides"

    def __init__(self, config):
        super().__init__(config)
        options = config.logmel
        self.mel = LogMelFrames(config.sample_rate, options.hop, config.n_mels, options.window_seconds, causal=True)

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        if config.resolved_input_norm == "window":
            raise ValueError("frontend 'logmel' standardises log-mel frames with running statistics (input_norm "
                             "'causal') or not at all ('none'); input_norm 'window' would need the whole "
                             "utterance: set input_norm to 'causal'")
        options = config.logmel
        if options.hop < 1 or options.window_seconds * config.sample_rate < options.hop:
            raise ValueError(f"logmel.hop {options.hop} must be at least 1 sample and no longer than the window "
                             f"(logmel.window_seconds {options.window_seconds} s)")
        if options.prior_seconds <= 0 or options.prior_std <= 0:
            raise ValueError(f"logmel.prior_seconds ({options.prior_seconds}) and logmel.prior_std "
                             f"({options.prior_std}) must be positive: the running statistics start from them")
        if config.regression_target == "logmel" and math.prod(config.encoder.strides) != 1:
            raise ValueError("regression_target 'logmel' with frontend 'logmel' predicts the input frames: it "
                             f"needs encoder strides of 1 (got {list(config.encoder.strides)})")

    @classmethod
    def hop_of(cls, config) -> int:
        return config.logmel.hop * math.prod(config.encoder.strides)

    def build_encoder(self) -> nn.Module:
        return ConvEncoder(self.config.encoder, in_channels=self.config.n_mels, causal=True)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, samples // logmel.hop, n_mels) standardised log-mel frames."""
        return self.standardize(self.mel(x))[0]

    def standardize(self, frames: torch.Tensor, carry=None):
        """(1 or batch, frames, n_mels) -> (standardised by input_norm, the running statistics to continue with)."""
        if self.config.resolved_input_norm == "none":
            return frames, None
        options = self.config.logmel
        prior = options.prior_seconds * self.config.sample_rate / options.hop
        return causal_standardize(frames, prior, options.prior_mean, options.prior_std, carry)

    def prepare_chunk(self, chunk, carry, stats):
        """The carry: the samples not yet in a whole window (at first the left edge's zero padding), and the
        running statistics."""
        tail, statistics = carry if carry is not None else (chunk.new_zeros(1, self.mel.pad_left), None)
        samples = torch.cat([tail, chunk], dim=1)
        hop, window = self.mel.hop, self.mel.window
        ready = max(0, (samples.shape[1] - window) // hop + 1)
        frames = self.mel.frames_of_padded(samples[:, : (ready - 1) * hop + window]) if ready else (
            chunk.new_zeros(1, 0, self.config.n_mels))
        frames, statistics = self.standardize(frames, statistics)
        return frames, (samples[:, ready * hop :], statistics)

    def field(self, encoder: nn.Module) -> int:
        return self.mel.window + (encoder.field - 1) * self.mel.hop

    def logmel_frames(self) -> nn.Module:
        return nn.Identity()  # its prepared input is the (standardised) log-mel frames


class VideoInput(InputAdapter):
    """Frames (batch, T, H, W, C), uint8 or float, each through FrameEncoder; one model frame per video frame."""

    kind, modality, unit, sample_dims = "video", "video", "frames", 4
    input_key, target_key = "frames", None
    regression_targets = ("pixels",)

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        if config.regression_target == "pixels" and config.pixel_size % config.frames.grid:
            raise ValueError(f"pixel_size {config.pixel_size} must be a multiple of frames.grid {config.frames.grid}")

    @classmethod
    def hop_of(cls, config) -> int:
        return 1

    @property
    def cells(self) -> int:
        return self.config.frames.grid**2

    def build_encoder(self) -> nn.Module:
        return FrameEncoder(self.config.frames)

    def check(self, x: torch.Tensor, min_steps: int = 1) -> None:
        if x.dim() != 5:
            raise ValueError(f"CPCModel (video) expects frames of shape (batch, time, height, width, channels); "
                             f"got shape {tuple(x.shape)}")
        if x.shape[-1] != self.config.frames.image.in_channels:
            raise ValueError(f"frames have {x.shape[-1]} channels but the frame encoder takes "
                             f"{self.config.frames.image.in_channels} (model.frames.image.in_channels)")
        super().check(x, min_steps)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Each frame standardised on its own (already causal), or scaled to [0, 1] for input_norm "none"."""
        return standardize_frames(x) if self.config.resolved_input_norm != "none" else x.float() / 255

    def throughput(self, x: torch.Tensor) -> tuple[float, str]:
        return float(x.shape[0] * x.shape[1]), "frames"

    def regression_target(self, name: str, prepared: torch.Tensor) -> torch.Tensor:
        """"pixels": (B, T, H, W, C) -> per grid cell, its frames average-pooled to pixel_size / grid squared."""
        if name != "pixels":
            return super().regression_target(name, prepared)
        b, t = prepared.shape[:2]
        size, grid = self.config.pixel_size, self.config.frames.grid
        pooled = nn.functional.adaptive_avg_pool2d(prepared.flatten(0, 1).permute(0, 3, 1, 2), size)
        return rearrange(pooled, "(b t) c (g1 s1) (g2 s2) -> (b g1 g2) t (c s1 s2)", b=b, t=t, g1=grid, g2=grid)

    def regression_dim(self, name: str) -> int:
        return self.config.frames.image.in_channels * (self.config.pixel_size // self.config.frames.grid)**2


INPUT_KINDS: dict[str, type[InputAdapter]] = {"waveform": WaveformInput, "logmel": LogMelInput, "video": VideoInput}


def adapter_class(config) -> type[InputAdapter]:
    """The adapter class a CPCModelConfig asks for (a ValueError naming the key if none), its config checked."""
    if config.modality not in MODALITIES:
        raise ValueError(f"unknown modality {config.modality!r}; choose one of {MODALITIES}")
    if config.frontend not in FRONTENDS:
        raise ValueError(f"unknown frontend {config.frontend!r}; choose one of {FRONTENDS}")
    if config.modality == "video" and config.frontend != "waveform":
        raise ValueError(f"frontend {config.frontend!r} reads audio; a video model reads its frames: leave "
                         "frontend out of a video config")
    if config.input_norm not in INPUT_NORMS:
        raise ValueError(f"unknown input_norm {config.input_norm!r}; choose one of {INPUT_NORMS}")
    cls = INPUT_KINDS[config.frontend if config.modality == "audio" else config.modality]
    cls.check_config(config)
    return cls


def input_adapter(config) -> InputAdapter:
    """The input adapter of a CPCModelConfig."""
    return adapter_class(config)(config)
