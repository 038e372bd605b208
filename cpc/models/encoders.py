"""Encoders g_enc: raw audio (or a sequence of feature frames such as log-mel) -> one vector per frame
(ConvEncoder); an image -> one vector (ImageEncoder: a small
conv net or a torchvision ResNet, shared by the image baselines); a video clip -> one vector per frame, or per cell
of a small spatial grid (FrameEncoder, an ImageEncoder applied to every frame).

`ConvEncoder` is the strided 1-D convolution stack of CPC. Its input is padded once, at the signal's edges, by
exactly enough that an input of S samples gives ``S // hop`` frames and frame t is centred on samples
``[hop*t, hop*t + hop)``; no layer pads on its own. That makes frame counts line up with 10 ms alignments and
makes chunked (streaming) encoding equal whole-signal encoding, because zeros only ever enter at the true edges.
Over feature frames (`in_channels` > 1, `causal=True`) all the padding goes on the left: frame t then sees input
steps up to t only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.utils.checkpoint
from einops import rearrange
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


@dataclass
class ConvEncoderConfig:
    channels: int = 512
    kernels: tuple[int, ...] = (10, 8, 4, 4, 4)
    strides: tuple[int, ...] = (5, 4, 2, 2, 2)
    norm: str = "batch"  # "channel" (per-frame LayerNorm over channels), "batch", "instance" or "none"
    # Recompute the first conv + norm in backward instead of keeping the conv output: that layer has 4x the frames
    # of any later one, so this drops the largest saved tensor (34 MB at 8 x 20480, 256 channels) for ~1 % more
    # compute (the first conv has one input channel). Recomputing the ReLU output too (checkpointing through the
    # second conv) lowers the saved total further but raises the backward peak: measured, not worth it.
    recompute_first: bool = True


NORMS = ("channel", "batch", "instance", "none")


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each frame, with a learnable affine, for (batch, channels, 1, time) tensors
    in channels_last memory: the permuted view is contiguous, so the fused kernel runs with no copy."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "channel":
        return ChannelNorm(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":  # over time, per channel: the height axis has size 1
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown encoder norm {kind!r}; choose one of {NORMS}")


def receptive_field(kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Number of input samples one output frame sees."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * jump
        jump *= stride
    return field


class ConvEncoder(nn.Module):
    """Strided 1-D conv stack: waveform (batch, samples) -> frames (batch, samples // hop, channels); with
    `in_channels` > 1, feature frames (batch, steps, in_channels) -> (batch, steps // hop, channels). `causal`: pad
    on the left only, so output frame t sees no input step after its own last one."""

    def __init__(self, config: ConvEncoderConfig = ConvEncoderConfig(), in_channels: int = 1, causal: bool = False):
        super().__init__()
        if len(config.kernels) != len(config.strides):
            raise ValueError(
                f"encoder kernels {config.kernels} and strides {config.strides} must have the same length"
            )
        self.config, self.in_channels = config, in_channels
        self.hop = math.prod(config.strides)
        self.field = receptive_field(config.kernels, config.strides)
        # Pad (field - hop) samples in all, split so frame t is centred on its own hop-sized window (or all on the
        # left: causal).
        pad = self.field - self.hop
        self.pad_left = pad if causal else pad // 2
        self.pad_right = pad - self.pad_left
        # 1-D convolutions run as (1, k) Conv2d over (batch, channels, 1, time) in channels_last memory: oneDNN
        # (and cuDNN) are fastest in that layout, the channel norm needs no transposes, and the output is already
        # (batch, time, channels). Measured on 2 CPU cores, 256 channels, forward + backward of 8 x 20480 samples:
        # 371 ms vs 559 ms with Conv1d + channel norm, 284 ms vs 364 ms with BatchNorm.
        layers: list[nn.Module] = []
        for kernel, stride in zip(config.kernels, config.strides):
            layers += [
                nn.Conv2d(in_channels, config.channels, (1, kernel), (1, stride), bias=config.norm == "none"),
                make_norm(config.norm, config.channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = config.channels
        self.layers = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.dim = config.channels

    def num_frames(self, samples: int) -> int:
        """Exact output length for an input of `samples` samples: samples // hop."""
        return samples // self.hop

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, samples // hop, channels), or (batch, steps, in_channels) -> (batch,
        steps // hop, channels)."""
        if self.in_channels == 1 and wav.dim() != 2:
            raise ValueError(f"ConvEncoder expects a waveform of shape (batch, samples); got shape {tuple(wav.shape)}")
        if self.in_channels > 1 and (wav.dim() != 3 or wav.shape[2] != self.in_channels):
            raise ValueError(f"ConvEncoder expects frames of shape (batch, steps, {self.in_channels}); got shape "
                             f"{tuple(wav.shape)}")
        if wav.shape[1] < self.hop:
            unit = "samples" if self.in_channels == 1 else "steps"
            raise ValueError(f"ConvEncoder needs at least {self.hop} {unit} (one frame); got {wav.shape[1]}")
        return self.encode_padded(pad_time(wav, self.pad_left, self.pad_right))

    def encode_padded(self, wav: torch.Tensor) -> torch.Tensor:
        """(batch, samples already padded, or carrying real context), or (batch, steps, in_channels) likewise ->
        (batch, frames, channels)."""
        x = wav[:, None, None, :] if wav.dim() == 2 else rearrange(wav, "b t c -> b c 1 t")
        if not self.training and self.config.norm == "batch":
            x = self.fused_inference(x)
        elif self.config.recompute_first and torch.is_grad_enabled() and self.training:
            x = torch.utils.checkpoint.checkpoint(recomputable(self.layers[:2]), x, use_reentrant=False)
            x = self.layers[2:](x)
        else:
            x = self.layers(x)  # (batch, channels, 1, frames), channels_last
        return x.permute(0, 2, 3, 1).squeeze(1)

    def fused_inference(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode forward with each BatchNorm folded into its conv (weights rescaled, shift as bias): one pass
        over each layer's output instead of three; under bf16 autocast the separate norm took a third of the time.
        Folded afresh on every call (a few hundred thousand multiplies), so later weight changes are never stale."""
        for weight, bias, stride in self.folded_convs():
            x = torch.relu_(nn.functional.conv2d(x, weight, bias, stride))
        return x

    def folded_convs(self) -> list[tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]]:
        """(weight, bias, stride) of each layer as one conv followed by ReLU, eval-mode BatchNorm folded in; for
        norms that depend on the input itself (channel, instance) there is no such form."""
        if self.config.norm not in ("batch", "none"):
            raise ValueError(f"a {self.config.norm!r} norm depends on each input: it cannot be folded into the convs")
        layers = []
        for conv, norm in zip(self.layers[0::3], self.layers[1::3]):
            weight, bias = conv.weight, conv.bias
            if isinstance(norm, nn.modules.batchnorm._BatchNorm):  # SyncBatchNorm too
                weight, bias = fuse_conv_bn_weights(weight, bias, norm.running_mean, norm.running_var, norm.eps,
                                                    norm.weight, norm.bias)
            layers.append((weight, bias, conv.stride))
        return layers


def pad_time(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Zeros before and after the time axis (axis 1) of (batch, samples) or (batch, steps, channels)."""
    return nn.functional.pad(x, (left, right) if x.dim() == 2 else (0, 0, left, right))


def recomputable(layers: nn.Sequential):
    """`layers` as a function safe to run twice under activation checkpointing: the second run (the backward
    recomputation) normalises with the same batch statistics but leaves BatchNorm's running statistics alone."""
    calls = 0

    def run(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        for layer in layers:
            if calls > 1 and isinstance(layer, nn.SyncBatchNorm):  # the same global statistics, running ones kept
                x = without_running_update(layer, x)
            elif calls > 1 and isinstance(layer, nn.modules.batchnorm._BatchNorm):  # copies take the second update
                x = nn.functional.batch_norm(x, layer.running_mean.clone(), layer.running_var.clone(), layer.weight,
                                             layer.bias, True, layer.momentum, layer.eps)
            else:
                x = layer(x)
        return x

    return run


def without_running_update(norm: nn.SyncBatchNorm, x: torch.Tensor) -> torch.Tensor:
    """`norm(x)` in training mode (statistics over every rank's batch) with its running statistics and batch
    count left as they were: momentum 0 keeps the running averages."""
    momentum, tracked = norm.momentum, norm.num_batches_tracked.clone()
    norm.momentum = 0.0
    try:
        return norm(x)
    finally:
        norm.momentum = momentum
        norm.num_batches_tracked.copy_(tracked)


def standardize(wav: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance per row of (batch, samples): the untrained encoder otherwise outputs mostly biases."""
    mean = wav.mean(dim=-1, keepdim=True)
    std = wav.std(dim=-1, keepdim=True, unbiased=False)
    return (wav - mean) / (std + eps)


CausalCarry = tuple[torch.Tensor, int]  # (sum of squares so far per row (batch,) float64, samples so far)


def causal_normalize(wav: torch.Tensor, level: float, prior_samples: int,
                     carry: CausalCarry | None = None) -> tuple[torch.Tensor, CausalCarry]:
    """(batch, samples) -> each sample divided by the running RMS of its row up to and including it, the RMS
    starting from `prior_samples` pseudo-samples of RMS `level`; returns the carry to continue the rows with.

    x_hat[s] = x[s] / sqrt((sum_{u<=s} x[u]^2 + n0 level^2) / (s + 1 + n0)): sample s sees no later sample, so
    context c_t never depends on the future, and pushing a row in chunks with the carry equals one call on the
    whole row (to float rounding). Summed in float64 outside autocast: over an hour of audio (5.8e7 samples) a
    float32 cumsum of squares would lose the last samples' contribution to rounding."""
    dtype = torch.float32 if wav.device.type == "mps" else torch.float64  # MPS has no float64
    with torch.autocast(wav.device.type, enabled=False):
        x = wav.to(dtype)
        carried_sum, carried_count = carry if carry is not None else (torch.zeros(x.shape[0], dtype=dtype,
                                                                                  device=x.device), 0)
        running = torch.cumsum(x * x, dim=-1) + carried_sum.to(dtype)[:, None]
        # The count as an offset, not arange's bounds: it may be a tensor (an exported graph's state input).
        count = carried_count + torch.arange(1, x.shape[-1] + 1, dtype=dtype, device=x.device)
        rms = torch.sqrt((running + prior_samples * level**2) / (count + prior_samples))
        out = (x / rms).to(wav.dtype if wav.is_floating_point() else torch.float32)
    last = running[:, -1] if x.shape[-1] else carried_sum.to(dtype)
    return out, (last, carried_count + x.shape[-1])


StandardizeCarry = tuple[torch.Tensor, torch.Tensor, int]  # per row and bin: sum, sum of squares; frames so far


def causal_standardize(frames: torch.Tensor, prior_frames: float, prior_mean: float, prior_std: float,
                       carry: StandardizeCarry | None = None,
                       eps: float = 1e-5) -> tuple[torch.Tensor, StandardizeCarry]:
    """(batch, frames, bins) -> each value minus the running mean of its bin up to and including its frame, over
    the running standard deviation, both starting from `prior_frames` pseudo-frames of mean `prior_mean` and
    standard deviation `prior_std`; returns the carry to continue the rows with.

    Frame t sees no later frame, and chunks pushed with the carry equal one call on the whole rows (to float
    rounding). Summed in float64 outside autocast, as causal_normalize sums."""
    dtype = torch.float32 if frames.device.type == "mps" else torch.float64
    with torch.autocast(frames.device.type, enabled=False):
        x = frames.to(dtype)
        if carry is None:
            zeros = torch.zeros(x.shape[0], x.shape[2], dtype=dtype, device=x.device)
            carry = (zeros, zeros, 0)
        carried_sum, carried_squares, carried_count = carry
        sums = torch.cumsum(x, dim=1) + carried_sum.to(dtype)[:, None]
        squares = torch.cumsum(x * x, dim=1) + carried_squares.to(dtype)[:, None]
        count = torch.arange(carried_count + 1, carried_count + x.shape[1] + 1, dtype=dtype, device=x.device)
        count = count[:, None] + prior_frames
        mean = (sums + prior_frames * prior_mean) / count
        variance = (squares + prior_frames * (prior_std**2 + prior_mean**2)) / count - mean**2
        out = ((x - mean) / torch.sqrt(variance.clamp_min(0) + eps)).to(torch.float32)
    if x.shape[1]:
        carried_sum, carried_squares = sums[:, -1], squares[:, -1]
    return out, (carried_sum, carried_squares, carried_count + x.shape[1])


class SpectralFrames(nn.Module):
    """A torchaudio spectral transform (batch, samples) -> (batch, bins, frames) on ConvEncoder's frame grid:
    the input padded so frame t's `window_seconds` window is centred on samples [hop t, hop t + hop), giving
    samples // hop frames (batch, frames, bins). `causal`: the window ends where frame t's hop ends (all padding
    on the left), so frame t sees no later sample. Computed in float32 outside autocast (mel power exceeds fp16)."""

    def __init__(self, transform: nn.Module, hop: int, window: int, dim: int, causal: bool = False):
        super().__init__()
        self.transform, self.dim, self.hop, self.window = transform, dim, hop, window
        self.pad_left = window - hop if causal else (window - hop) // 2
        self.pad_right = window - hop - self.pad_left

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.frames_of_padded(nn.functional.pad(wav.float(), (self.pad_left, self.pad_right)))

    def frames_of_padded(self, padded: torch.Tensor) -> torch.Tensor:
        """(batch, samples already padded, or carrying real context) -> (batch, frames, bins): one frame per
        whole window, every `hop` samples."""
        with torch.autocast(padded.device.type, enabled=False):
            return self.transform(padded.float()).transpose(1, 2)


def mel_options(sample_rate: int, hop: int, n_mels: int, window_seconds: float = 0.025) -> dict:
    """torchaudio MelSpectrogram arguments for frames of `window_seconds` every `hop` samples, unpadded."""
    window = round(window_seconds * sample_rate)
    return dict(sample_rate=sample_rate, n_fft=window, win_length=window, hop_length=hop, n_mels=n_mels,
                center=False)


class LogMelFrames(SpectralFrames):
    """Log-mel spectrogram frames aligned with ConvEncoder's: (batch, samples) -> (batch, samples // hop, n_mels)."""

    def __init__(self, sample_rate: int, hop: int, n_mels: int = 80, window_seconds: float = 0.025,
                 causal: bool = False):
        import torchaudio  # local: keeps `import cpc.models` light for users who never need mel features

        options = mel_options(sample_rate, hop, n_mels, window_seconds)
        mel = torchaudio.transforms.MelSpectrogram(**options)
        super().__init__(nn.Sequential(mel, LogOffset()), hop, options["n_fft"], n_mels, causal)


class LogOffset(nn.Module):
    """log(x + 1e-6), as torchaudio's MFCC takes the log of mel power (log_mels=True)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x + 1e-6)


@dataclass
class ImageEncoderConfig:
    arch: str = "conv"  # "conv" (small strided conv net for CPU runs), "resnet18" or "resnet50" (torchvision)
    in_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 256)  # conv: one 3x3 conv block per entry
    strides: tuple[int, ...] = (1, 2, 2, 2)  # conv
    norm: str = "batch"  # conv: any of NORMS; the ResNets keep their BatchNorm
    # ResNet stem for small images (CIFAR, 32x32): 3x3 stride-1 first conv and no max-pool, instead of the
    # ImageNet stem's 7x7 stride-2 conv and max-pool, which would shrink 32x32 to 8x8 before the first block.
    cifar_stem: bool = True


IMAGE_ARCHS = ("conv", "resnet18", "resnet50")


class ImageEncoder(nn.Module):
    """images (N, C, H, W) float -> feature maps (N, dim, h, w) via `feature_map`, or pooled vectors (N, dim)."""

    def __init__(self, config: ImageEncoderConfig = ImageEncoderConfig()):
        super().__init__()
        self.config = config
        if config.arch == "conv":
            if len(config.channels) != len(config.strides) or not config.channels:
                raise ValueError(f"image encoder channels {config.channels} and strides {config.strides} must be "
                                 "non-empty and of the same length")
            layers: list[nn.Module] = []
            in_channels = config.in_channels
            for channels, stride in zip(config.channels, config.strides):
                layers += [nn.Conv2d(in_channels, channels, 3, stride, 1, bias=config.norm == "none"),
                           make_norm(config.norm, channels), nn.ReLU(inplace=True)]
                in_channels = channels
            self.trunk = nn.Sequential(*layers)
            self.dim = in_channels
        elif config.arch in ("resnet18", "resnet50"):
            import torchvision

            net = getattr(torchvision.models, config.arch)(weights=None)
            if config.cifar_stem:
                net.conv1 = nn.Conv2d(config.in_channels, 64, 3, 1, 1, bias=False)
                net.maxpool = nn.Identity()
            elif config.in_channels != 3:
                net.conv1 = nn.Conv2d(config.in_channels, 64, 7, 2, 3, bias=False)
            self.trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                       net.layer1, net.layer2, net.layer3, net.layer4)
            self.dim = net.fc.in_features
        else:
            raise ValueError(f"unknown image encoder arch {config.arch!r}; choose one of {IMAGE_ARCHS}")
        self.trunk.to(memory_format=torch.channels_last)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(f"image encoder expects (N, {self.config.in_channels}, H, W) images; "
                             f"got shape {tuple(images.shape)}")
        return self.trunk(images.contiguous(memory_format=torch.channels_last))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature_map(images).mean(dim=(2, 3))


def image_encoder_for_frames() -> ImageEncoderConfig:
    """A CPU-sized frame trunk for small grey frames (e.g. 32x32 moving digits): 32x32 -> 128 maps of 4x4."""
    return ImageEncoderConfig(in_channels=1, channels=(32, 64, 128), strides=(2, 2, 2))


@dataclass
class FrameEncoderConfig:
    image: ImageEncoderConfig = field(default_factory=image_encoder_for_frames)
    grid: int = 1  # 1: one vector per frame; g: one per cell of a g x g grid (Dense Predictive Coding)
    # How a frame's (or cell's) feature map becomes one vector: "mean" (global average: translation-invariant, so
    # blind to where things are), "flatten" (the map average-pooled to map_size x map_size, flattened and
    # projected to `dim` by a linear layer: keeps the layout, which predicting motion needs) or "both" (the two
    # concatenated: where things are and, on its own axes, what they are).
    pool: str = "flatten"
    map_size: int = 4
    dim: int = 256  # "flatten" only


FRAME_POOLS = ("flatten", "mean", "both")


class FrameEncoder(nn.Module):
    """g_enc for video: frames (B, T, H, W, C) float -> (B, T, dim), or (B, T, grid * grid, dim) for grid > 1.
    Every frame is encoded on its own, so frame t's vector never depends on other frames."""

    def __init__(self, config: FrameEncoderConfig = FrameEncoderConfig()):
        super().__init__()
        if config.grid < 1:
            raise ValueError(f"frame encoder grid must be >= 1; got {config.grid}")
        if config.pool not in FRAME_POOLS:
            raise ValueError(f"unknown frame pooling {config.pool!r}; choose one of {FRAME_POOLS}")
        self.config = config
        self.image = ImageEncoder(config.image)
        self.project = None
        if config.pool != "mean":
            self.project = nn.Linear(self.image.dim * config.map_size**2, config.dim)
        self.dim = (config.dim if config.pool != "mean" else 0) + (self.image.dim if config.pool != "flatten" else 0)
        self.hop = 1  # one output step per input frame

    def num_frames(self, frames: int) -> int:
        return frames

    def feature_maps(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, C) -> the trunk's maps (B*T, dim, h, w)."""
        if frames.dim() != 5:
            raise ValueError(f"FrameEncoder expects frames of shape (batch, time, height, width, channels); "
                             f"got shape {tuple(frames.shape)}")
        # (B, T, H, W, C) -> (B*T, C, H, W) is a channels_last view: no copy.
        return self.image.feature_map(frames.flatten(0, 1).permute(0, 3, 1, 2))

    def appearance(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, C) -> (B, T, trunk dim): each frame's trunk maps averaged over space, i.e. what is in the
        frame regardless of where (the "flatten" vectors z mix what with where)."""
        return self.feature_maps(frames).mean(dim=(2, 3)).view(*frames.shape[:2], -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        maps = self.feature_maps(frames)
        grid, size = self.config.grid, self.config.map_size
        parts = []
        if self.project is not None:  # each cell's own size x size patch of the (grid * size) map, flattened
            patches = nn.functional.adaptive_avg_pool2d(maps, grid * size)
            parts.append(self.project(rearrange(patches, "n d (g1 s1) (g2 s2) -> n (g1 g2) (d s1 s2)",
                                                s1=size, s2=size)))
        if self.config.pool != "flatten":  # (B*T, g*g, trunk dim)
            parts.append(nn.functional.adaptive_avg_pool2d(maps, grid).flatten(2).transpose(1, 2))
        cells = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        return cells.reshape(b, t, -1) if grid == 1 else cells.reshape(b, t, grid * grid, -1)


def standardize_frames(frames: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """uint8 (or float) frames (B, T, H, W, C) -> float, each frame to zero mean and unit variance on its own
    (per frame, not per clip: a clip-wide mean would leak future frames into c_t)."""
    flat = frames.flatten(2).float()
    return standardize(flat, eps).view(frames.shape)
