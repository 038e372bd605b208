"""Int8 inference of a trained audio encoder, for fast feature extraction on x86 CPUs.

Each layer of a `ConvEncoder` with BatchNorm (folded into its conv) or no norm becomes one oneDNN int8
convolution with the ReLU fused in: uint8 activations with one calibrated scale per layer, int8 weights with one
scale per output channel, int32 accumulation, the output requantised to uint8 for the next layer (a quarter of
float32's memory traffic) and written as float32 by the last layer, where g_ar takes over.

The data are plain uint8 / int8 tensors and the scales live here: torch's quantized dtypes (`torch.quint8`,
`quantize_per_tensor`, `torch.ao.nn.quantized`) are deprecated (pytorch/pytorch#184982). The kernels are
`torch.ops.onednn.qconv_prepack` / `qconv_pointwise`, the ones torch's own x86 int8 lowering calls.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from cpc.models.cpc import CPCModel
from cpc.models.encoders import ConvEncoder

UINT8_MAX = 255
INT8_MAX = 127
WAVE_ZERO_POINT = 128  # the standardised waveform is signed; every later layer's input is a ReLU output (>= 0)
# The waveform enters as two uint8 channels: coarse (one step = the input scale) and the coarse part's rounding
# error in steps RESIDUAL_STEPS times finer, the first conv's weights for that channel divided by the same
# factor. A single 8-bit waveform cost the features more than everything else together (encoder output error
# 6.7 % vs 0.37 % with the split, 3.1 % from all activations, 0.4 % from weights; a trained 256-ch model on speech).
RESIDUAL_STEPS = 16
CALIBRATION_SAMPLES = 1 << 20  # values per layer the percentile is taken over (an even stride through the layer)


def int8_available() -> bool:
    """Whether this torch build has oneDNN's int8 convolutions (x86-64 CPU builds do) and the CPU has VNNI
    (AVX-512 VNNI or AVX-VNNI): without it oneDNN sums pairs of u8 x s8 products in saturating 16-bit lanes
    (AVX2's vpmaddubsw), which changed features by 5.7 % on a 5-layer encoder instead of the designed ~4 %."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv_pointwise")
            and torch.cpu._is_vnni_supported())


def check_int8(model: CPCModel) -> None:
    """A clear error unless `model`'s encoder can run in int8 here."""
    if not model.inputs.int8:
        raise ValueError(f"int8 encoding exists for raw-waveform audio models (ConvEncoder on samples) only; this "
                         f"model reads {model.inputs.kind} input: use fp32 or bf16")
    norm = model.config.encoder.norm
    if norm not in ("batch", "none"):
        raise ValueError(f"int8 encoding needs an encoder with BatchNorm or no norm (folded into the convs); "
                         f"this one has {norm!r} norm, which depends on each input: use fp32 or bf16")
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 encoding runs on the CPU; move the model there first (model.cpu())")
    if not int8_available():
        raise RuntimeError("int8 encoding needs PyTorch's oneDNN int8 convolutions (x86-64 CPU builds) on a CPU "
                           "with VNNI (AVX-512 VNNI or AVX-VNNI); use fp32 or bf16 here")


def activation_scale(x: torch.Tensor, percentile: float, levels: int) -> float:
    """The step that spreads |x| up to its `percentile` over `levels` steps: the rare largest values saturate
    instead of coarsening every other value's step."""
    flat = x.detach().abs().flatten().float()
    flat = flat[:: max(1, flat.numel() // CALIBRATION_SAMPLES)]
    top = float(torch.quantile(flat, percentile / 100)) if percentile < 100 else float(flat.max())
    return max(top, 1e-8) / levels


class Int8ConvEncoder(ConvEncoder):
    """A trained ConvEncoder run in int8: same frames, `hop`, `field` and padding, for inference only.
    `calibration`: (batch, samples) waveforms, prepared (standardised) and padded as the encoder sees them;
    `percentile`: of each layer's activations mapped to the top of uint8's range."""

    def __init__(self, encoder: ConvEncoder, calibration: torch.Tensor, percentile: float = 99.97):
        super().__init__(encoder.config)
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100]; got {percentile}")
        self.load_state_dict(encoder.state_dict())
        self.eval()
        with torch.no_grad():
            self.quantize(self.folded_convs(), calibration[:, None, None, :].float(), percentile)

    def quantize(self, layers, x: torch.Tensor, percentile: float) -> None:
        """Per-layer int8 weights (one scale per output channel, packed for oneDNN) and uint8 activation scales
        from the float layers' activations on the calibration input."""
        # the waveform's full calibrated range (the residual channel already refines the steps; no clipping)
        self.input_scale = activation_scale(x, 100, INT8_MAX)
        self.int8_layers = []
        in_scale, zero_point = self.input_scale, WAVE_ZERO_POINT
        for index, (weight, bias, stride) in enumerate(layers):
            x = torch.relu(nn.functional.conv2d(x, weight, bias, stride))
            last = index == len(layers) - 1
            out_scale = 1.0 if last else activation_scale(x, percentile, UINT8_MAX)  # oneDNN: float out, scale 1
            if index == 0:
                weight = torch.cat([weight, weight / RESIDUAL_STEPS], dim=1)  # (coarse, residual) input channels
            weight_scale = weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / INT8_MAX
            int8_weight = torch.round(weight / weight_scale[:, None, None, None]).to(torch.int8)
            packed = torch.ops.onednn.qconv_prepack(int8_weight, weight_scale, in_scale, zero_point, list(stride),
                                                    [0, 0], [1, 1], 1, None)
            bias = torch.zeros(weight.shape[0]) if bias is None else bias.detach().float()
            self.int8_layers.append((packed, weight_scale, in_scale, zero_point, bias, list(stride), out_scale))
            in_scale, zero_point = out_scale, 0
        self.weight_zero_points = torch.zeros(self.dim, dtype=torch.int32)

    def encode_padded(self, wav: torch.Tensor) -> torch.Tensor:
        """(batch, padded samples) float -> (batch, frames, channels) float32."""
        if self.training:
            raise RuntimeError("an int8 encoder is for inference only (call .eval())")
        x = split_waveform(wav.float(), self.input_scale)
        for index, (packed, weight_scale, in_scale, zero_point, bias, stride, out_scale) in enumerate(self.int8_layers):
            out_dtype = torch.float32 if index == len(self.int8_layers) - 1 else None  # None: uint8
            x = torch.ops.onednn.qconv_pointwise(x, in_scale, zero_point, packed, weight_scale,
                                                 self.weight_zero_points, bias, stride, [0, 0], [1, 1], 1,
                                                 out_scale, 0, out_dtype, "relu", [], "")
        return x.permute(0, 2, 3, 1).squeeze(1)  # (batch, channels, 1, frames) channels_last -> a free view


def split_waveform(wav: torch.Tensor, scale: float) -> torch.Tensor:
    """(batch, samples) float -> (batch, 2, 1, samples) uint8 in channels_last memory: the waveform in steps of
    `scale` and its rounding error in steps of scale / RESIDUAL_STEPS, both around WAVE_ZERO_POINT."""
    coarse = torch.round(wav / scale).clamp_(-WAVE_ZERO_POINT, UINT8_MAX - WAVE_ZERO_POINT)
    residual = torch.round((wav - coarse * scale) * (RESIDUAL_STEPS / scale)).clamp_(-INT8_MAX, INT8_MAX)
    both = torch.stack([coarse, residual], dim=-1).add_(WAVE_ZERO_POINT).to(torch.uint8)  # (batch, samples, 2)
    return both[:, None].permute(0, 3, 1, 2)  # a view: (batch, 2, 1, samples), channels last


def int8_model(model: CPCModel, calibration: Sequence[np.ndarray | torch.Tensor], percentile: float = 99.97,
               max_seconds: float = 60.0) -> CPCModel:
    """A copy of an audio CPC model whose encoder runs in int8, its activation scales calibrated on a few
    utterances `calibration` (raw waveforms, each prepared as the model prepares its input), at most
    `max_seconds` of them in all (calibration runs the float encoder: memory grows with its input)."""
    check_int8(model)
    encoder = model.encoder
    if not calibration:
        raise ValueError("int8 calibration needs at least one utterance")
    rows, budget = [], round(max_seconds * model.config.sample_rate)
    for wav in calibration:
        if budget <= 0:
            break
        wav = torch.as_tensor(wav, dtype=torch.float32).reshape(1, -1)
        rows.append(model.prepare(wav)[:, :budget])  # standardised on the whole utterance, then cut
        budget -= rows[-1].shape[1]
    padded = torch.cat([nn.functional.pad(row, (encoder.pad_left, encoder.pad_right)) for row in rows], dim=1)
    quantized = copy.deepcopy(model).eval()
    quantized.encoder = Int8ConvEncoder(encoder, padded.cpu(), percentile)
    return quantized
