"""CPCModel = input adapter + g_enc + g_ar (+ prediction heads), the rules its config must meet, and the named
model presets (the published configurations) that training and evaluation build from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from einops import rearrange, reduce
from torch import nn

from cpc.config import Rules
from cpc.models.autoregressive import AR_KINDS, AutoregressiveConfig, build_autoregressive
from cpc.models.encoders import NORMS, ConvEncoderConfig, FrameEncoderConfig
from cpc.models.heads import PREDICTOR_KINDS, PredictionHeads, PredictorConfig
from cpc.models.inputs import FRONTENDS, MODALITIES, LogMelConfig, adapter_class, input_adapter

REGRESSION_TARGETS = ("none", "z", "logmel", "pixels")


@dataclass
class CPCModelConfig:
    # "audio": waveforms (B, samples) through `encoder`; "video": frames (B, T, H, W, C) through `frames`.
    modality: str = "audio"
    # How an audio model reads its waveform (cpc.models.inputs): "waveform", the samples themselves into `encoder`'s
    # strided convs; "logmel", log-mel frames (`logmel`, `n_mels`) into `encoder` as causal convs over frames.
    # Configs written before this key existed read "waveform". Video models leave it out.
    frontend: str = "waveform"
    sample_rate: int = 16000  # audio: what the encoder was trained on; data, features and probes read it here
    encoder: ConvEncoderConfig = field(default_factory=ConvEncoderConfig)
    logmel: LogMelConfig = field(default_factory=LogMelConfig)
    frames: FrameEncoderConfig = field(default_factory=FrameEncoderConfig)
    ar: AutoregressiveConfig = field(default_factory=AutoregressiveConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    # Predictive-coding regression head: predict future encoder frames "z" (detached), "logmel" frames (audio) or
    # "pixels" (video: each future frame average-pooled to pixel_size x pixel_size, or each grid cell's share):
    # a pixel target makes the context carry what the frames show, not only what tells them apart.
    regression_target: str = "none"
    n_mels: int = 80  # mel bands of the "logmel" front end and of the "logmel" regression target
    pixel_size: int = 8
    # Input normalisation (without one an untrained encoder outputs mostly its biases):
    # "window": each input row to zero mean, unit variance with its own statistics, so c_t depends on samples
    #   after t and a stream needs the utterance's statistics in advance. What a checkpoint saved before this key
    #   existed (its config has no `input_norm`) was trained with, so reading such a record gives "window"
    #   (ABSENT_MEANS below); new configs default to "causal".
    # "causal": each sample divided by the running RMS of its row up to itself (encoders.causal_normalize), which
    #   starts from `input_prior_seconds` of pseudo-audio at RMS `input_level`: c_t depends on the past only and
    #   streams need no calibration. Level 0.1 (-20 dBFS) is the bundled corpus's typical RMS (0.05-0.2 per
    #   utterance) and a common speech loudness target, so the first frames of a window are scaled about as the
    #   rest. 0.025 s (400 samples, about one receptive field) keeps the first samples from setting the gain alone
    #   (with no prior sample 0 comes out as +-1), while the signal outweighs the prior after 0.025 s * (0.1 /
    #   its RMS)^2: at once for loud input, 0.25 s at -30 dBFS, 2.5 s at -40 dBFS (set input_level near such a
    #   corpus's RMS). A longer prior (0.1 s) trained the same on the demo but adapts 4x slower.
    # "none": raw input. Video frames are standardised each on its own (already causal) unless "none".
    # The "logmel" front end standardises each mel band by its running mean and variance ("causal", `logmel`'s
    # prior) or not at all ("none"); it has no "window" form.
    # `standardize: false`, the older switch (kept for the checkpoints that record it; new configs leave it out),
    # means "none" whatever input_norm says.
    input_norm: str = "causal"
    input_level: float = 0.1
    input_prior_seconds: float = 0.025
    standardize: bool = True
    # A second g_ar (same config as `ar`) runs over the frames in reverse time with its own prediction heads,
    # trained jointly by InfoNCE on the same z (predicting the frames before each position). It serves the offline
    # feature layer "c_bidir" = [c; reverse context], which sees the whole utterance (CPC_audio concatenates a
    # forward and a reverse model the same way); the forward c stays causal and streamable.
    bidirectional: bool = False

    # What a stored config lacking a key meant (cpc.config.from_dict): records from before `input_norm` existed
    # standardised each window.
    ABSENT_MEANS: ClassVar[dict] = {"input_norm": "window"}

    def check(self, rules: Rules) -> None:
        """A ConfigError naming the first setting of this model section (`rules`, e.g. cpc.model) that cannot work:
        names among the known ones, sizes in range, what the input kind rules out, encoder layers that pair up."""
        rules.one_of("modality", MODALITIES)
        rules.one_of("frontend", FRONTENDS)
        rules.one_of("predictor.kind", PREDICTOR_KINDS)
        rules.one_of("regression_target", REGRESSION_TARGETS)
        rules.one_of("ar.kind", AR_KINDS)
        rules.at_least(1, "predictor.steps", "ar.dim", "ar.layers")
        try:  # what the input kind itself rules out (e.g. a log-mel front end with window statistics)
            adapter_class(self)
        except ValueError as error:
            rules.raised("frontend", error, "see docs/models.md")
        if self.modality == "video":
            return
        rules.one_of("encoder.norm", NORMS)
        kernels, strides = self.encoder.kernels, self.encoder.strides
        if len(kernels) != len(strides) or not strides or min(kernels + strides) < 1:
            rules.fail([rules.key("encoder.kernels"), rules.key("encoder.strides")],
                       f"encoder kernels {list(kernels)} and strides {list(strides)} do not pair up",
                       "give one kernel and one stride (each >= 1) per conv layer")

    @property
    def resolved_input_norm(self) -> str:
        """The input normalisation this config applies: `input_norm`, or "none" when `standardize` is false."""
        return self.input_norm if self.standardize else "none"

    @property
    def hop(self) -> int:
        """Input steps per output frame: audio samples per model frame (raw audio: the product of the encoder's
        strides; log-mel: logmel.hop times that); 1 for video."""
        return adapter_class(self).hop_of(self)


class CPCModel(nn.Module):
    """forward(wav (B, samples) or frames (B, T, H, W, C)) ->
    {"z": (B', T, D_enc), "c": (B', T, D_ar), "pred": (B', T, K, D_enc), ...}, where B' = B, or B * cells when a
    video encoder gives one vector per grid cell (each cell is then its own sequence, as in Dense Predictive Coding).
    """

    def __init__(self, config: CPCModelConfig = CPCModelConfig()):
        super().__init__()
        if config.regression_target not in REGRESSION_TARGETS:
            raise ValueError(
                f"unknown regression_target {config.regression_target!r}; choose one of {REGRESSION_TARGETS}"
            )
        if config.input_level <= 0 or config.input_prior_seconds <= 0:
            raise ValueError(f"input_level ({config.input_level}) and input_prior_seconds "
                             f"({config.input_prior_seconds}) must be positive: the causal RMS starts from them")
        self.config = config
        self.inputs = input_adapter(config)  # the input kind: its batch field, checks, preparation and hop
        self.encoder = self.inputs.build_encoder()
        self.ar = build_autoregressive(config.ar, self.encoder.dim)
        steps = config.predictor.steps
        self.predictor = None
        if config.predictor.kind != "none":
            self.predictor = PredictionHeads(
                config.ar.dim, self.encoder.dim, steps, config.predictor.kind, config.predictor.heads
            )
        self.ar_reverse = self.predictor_reverse = None
        if config.bidirectional:
            if self.predictor is None:
                raise ValueError("bidirectional: true trains the reverse g_ar by InfoNCE: it needs model.predictor")
            self.ar_reverse = build_autoregressive(config.ar, self.encoder.dim)
            self.predictor_reverse = PredictionHeads(
                config.ar.dim, self.encoder.dim, steps, config.predictor.kind, config.predictor.heads
            )
        self.logmel = None
        if config.regression_target == "logmel":
            self.logmel = self.inputs.logmel_frames()
        self.regressor = None
        if config.regression_target != "none":
            target = config.regression_target
            target_dim = self.encoder.dim if target == "z" else self.inputs.regression_dim(target)
            self.regressor = PredictionHeads(config.ar.dim, target_dim, steps, "linear")

    @property
    def hop(self) -> int:
        """Input steps per output frame: samples per frame for audio, 1 for video."""
        return self.inputs.hop

    @property
    def field(self) -> int:
        """Input steps one output frame sees (its receptive field)."""
        return self.inputs.field(self.encoder)

    @property
    def cells(self) -> int:
        """Sequences per input: grid * grid for a video encoder with a spatial grid, else 1."""
        return self.inputs.cells

    @property
    def steps(self) -> int:
        return self.config.predictor.steps

    def min_training_samples(self) -> int:
        """Shortest input that leaves at least one position with all K future frames: (K + 1) frames."""
        return (self.steps + 1) * self.hop

    def check_input(self, x: torch.Tensor, min_steps: int = 1) -> None:
        """A ValueError saying what was expected unless x is a batch of at least `min_steps` input steps."""
        self.inputs.check(x, min_steps)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Raw input -> what the encoder takes: normalised float rows (raw audio, `config.input_norm`), standardised
        log-mel frames, or frames (video)."""
        return self.inputs.prepare(x)

    def encode(self, prepared: torch.Tensor) -> torch.Tensor:
        """Prepared input -> encoder frames (B', T, D_enc), grid cells folded into the batch."""
        z = self.encoder(prepared)
        return rearrange(z, "b t g d -> (b g) t d") if z.dim() == 4 else z

    @torch.no_grad()
    def features(self, x: torch.Tensor, layer: str = "c") -> torch.Tensor:
        """Frame features: (samples,) -> (samples // hop, dim), or (batch, samples) -> (batch, frames, dim); for
        video (T, H, W, C) -> (T, dim) or (B, T, H, W, C) -> (B, T, dim), grid cells averaged; layer "appearance"
        (video): the frame trunk's maps averaged over space.
        Each row is normalised on its own; for batches of unequal lengths use cpc.features.extract_batch."""
        device = next(self.parameters()).device
        batch, single = self.inputs.as_batch(torch.as_tensor(x, device=device))
        self.check_input(batch)
        check_layer(layer)
        if layer == "appearance":
            if not hasattr(self.encoder, "appearance"):
                raise ValueError("feature layer 'appearance' exists for video models only")
            out = self.encoder.appearance(self.prepare(batch))
            return out[0] if single else out
        z = self.encode(self.prepare(batch))
        c, _ = self.ar(z)
        out = self.select(z, c, layer)
        if self.cells > 1:
            out = reduce(out, "(b g) t d -> b t d", "mean", g=self.cells)
        return out[0] if single else out

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`target`: another version of the same window (augmentation, cpc.data.augment: e.g. x augmented, target
        clean) that the target frames z (positives, negatives, regression targets) come from, while c_t is
        computed from x; both pass the encoder in one call."""
        self.check_input(x)
        if target is not None:
            self.check_input(target)
            if target.shape != x.shape:
                raise ValueError(f"target {tuple(target.shape)} must have the input's shape {tuple(x.shape)}")
        x = self.prepare(x)
        if target is None:
            z = z_target = self.encode(x)
        else:
            target = self.prepare(target)
            z, z_target = self.encode(torch.cat([x, target])).chunk(2)
        c, _ = self.ar(z)
        out = {"z": z_target, "c": c}
        if self.predictor is not None:
            out["pred"] = self.predictor(c)
        if self.ar_reverse is not None:  # in reverse time: row t predicts frames t+k of z_target.flip(1)
            out["pred_reverse"] = self.predictor_reverse(self.ar_reverse(z.flip(1))[0])
        if self.regressor is not None:
            out["regression"] = self.regressor(c)
            out["regression_target"] = self.regression_target(x if target is None else target, z_target)
        return out

    def reverse_context(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T, D_enc) -> (B, T, D_ar): at frame t, the reverse g_ar's summary of frames t..T-1 (not causal)."""
        if self.ar_reverse is None:
            raise ValueError("feature layer 'c_bidir' needs a model trained with model.bidirectional: true; this "
                             "one has no reverse g_ar")
        return self.ar_reverse(z.flip(1))[0].flip(1)

    def select(self, z: torch.Tensor, c: torch.Tensor, layer: str) -> torch.Tensor:
        """The feature `layer` of frames z and their context c (all frames of whole sequences, for "c_bidir")."""
        if layer == "c_bidir":
            return torch.cat([c, self.reverse_context(z)], dim=-1)
        return select_layer(z, c, layer)

    def layer_dim(self, layer: str) -> int:
        """Feature width of a model layer."""
        z, c = self.encoder.dim, self.config.ar.dim
        return {"z": z, "c": c, "both": z + c, "c_bidir": 2 * c}[layer]

    def regression_target(self, prepared: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """What the regression head predicts, frame-aligned with z: (B', T, target dim)."""
        if self.config.regression_target == "logmel":
            return self.logmel(prepared)
        if self.config.regression_target == "z":
            return z.detach()
        return self.inputs.regression_target(self.config.regression_target, prepared)


# Layers of a model's frames (z: encoder, c: context, both: the two); "c_bidir" = [c; reverse context] sees the
# whole utterance (offline only: not causal, not streamable); "appearance": video frames' pooled trunk maps.
MODEL_LAYERS = ("z", "c", "both", "c_bidir")
OFFLINE_LAYERS = ("c_bidir",)
FEATURE_LAYERS = MODEL_LAYERS + ("appearance",)


def check_layer(layer: str) -> None:
    if layer not in FEATURE_LAYERS:
        raise ValueError(f"unknown feature layer {layer!r}; choose one of {FEATURE_LAYERS} (z: encoder, c: context, "
                         "c_bidir: context of both directions (offline), appearance: video frames' spatially pooled "
                         "trunk maps)")


def select_layer(z: torch.Tensor, c: torch.Tensor, layer: str) -> torch.Tensor:
    """Encoder frames z, context c, or both concatenated along the feature axis (CPCModel.select: every layer)."""
    check_layer(layer)
    if layer == "appearance":
        raise ValueError("feature layer 'appearance' exists for video models only (CPCModel.features)")
    if layer in OFFLINE_LAYERS:
        raise ValueError(f"feature layer {layer!r} needs the model's reverse g_ar: use CPCModel.select")
    return {"z": z, "c": c, "both": torch.cat([z, c], dim=-1)}[layer]


def cpc_paper_config() -> CPCModelConfig:
    """Oord et al. 2018: 512 channels, BatchNorm, GRU 256, linear W_k, K = 12."""
    return CPCModelConfig(
        encoder=ConvEncoderConfig(channels=512, norm="batch"),
        input_norm="causal",
        ar=AutoregressiveConfig(kind="gru", dim=256),
        predictor=PredictorConfig(kind="linear", steps=12),
    )


def cpc_base_config() -> CPCModelConfig:
    """facebookresearch CPC_audio's defaults, with one shared Transformer predictor instead of twelve."""
    return CPCModelConfig(
        encoder=ConvEncoderConfig(channels=256, norm="channel"),
        input_norm="causal",
        ar=AutoregressiveConfig(kind="lstm", dim=256),
        predictor=PredictorConfig(kind="transformer", steps=12),
    )


def cpc_small_config() -> CPCModelConfig:
    """A small model for tests and CPU demos: 64 channels, BatchNorm, GRU 64, K = 4.

    BatchNorm, not channel norm: on CPU-demo learning rates (1e-3) the per-frame channel norm let the small model
    collapse to one constant frame (loss exactly ln(N + 1)) within 100 steps; BatchNorm cannot output a constant.
    """
    return CPCModelConfig(
        encoder=ConvEncoderConfig(channels=64, norm="batch"),
        input_norm="causal",
        ar=AutoregressiveConfig(kind="gru", dim=64),
        predictor=PredictorConfig(kind="linear", steps=4),
    )


def cpc_logmel_config() -> CPCModelConfig:
    """Log-mel front end: 80 causal log-mel bands every 10 ms, standardised by running statistics, three causal
    convs (kernel 3, 128 channels, channel norm) to z; GRU 256, linear W_k, K = 12: the shipped demo model
    (recipes/demo/cpc_shipped.yaml) with only its front end changed."""
    return CPCModelConfig(
        frontend="logmel",
        encoder=ConvEncoderConfig(channels=128, kernels=(3, 3, 3), strides=(1, 1, 1), norm="channel"),
        input_norm="causal",
        ar=AutoregressiveConfig(kind="gru", dim=256),
        predictor=PredictorConfig(kind="linear", steps=12),
    )


def cpc_video_config() -> CPCModelConfig:
    """Video frames (e.g. 32x32 grey moving digits): a 3-block strided conv per frame (128-d), GRU 128, K = 3
    (Dense Predictive Coding predicts 3 steps ahead)."""
    return CPCModelConfig(
        modality="video",
        ar=AutoregressiveConfig(kind="gru", dim=128),
        predictor=PredictorConfig(kind="linear", steps=3),
    )


def cpc_paper() -> CPCModel:
    return CPCModel(cpc_paper_config())


def cpc_base() -> CPCModel:
    return CPCModel(cpc_base_config())


def cpc_small() -> CPCModel:
    return CPCModel(cpc_small_config())


def cpc_logmel() -> CPCModel:
    return CPCModel(cpc_logmel_config())


MODEL_PRESETS: dict[str, Callable[[], CPCModelConfig]] = {
    "paper": cpc_paper_config, "base": cpc_base_config, "small": cpc_small_config, "logmel": cpc_logmel_config,
    "video": cpc_video_config,
}


def model_preset(name: str) -> CPCModelConfig:
    """The model of a named preset: "paper", "base", "small", "logmel" or "video" (a ValueError naming them)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown CPC preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]()
