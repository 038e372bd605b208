import math

import pytest
import torch
from torch import nn

from cpc.eval.features import extract, extract_batch, extract_chunked, extract_corpus
from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModel, CPCModelConfig, cpc_logmel_config
from cpc.models.encoders import ConvEncoder, ConvEncoderConfig
from cpc.models.heads import PredictorConfig
from cpc.models.int8 import (RESIDUAL_STEPS, WAVE_ZERO_POINT, Int8ConvEncoder, activation_scale, int8_available,
                             int8_model, split_waveform)

needs_int8 = pytest.mark.skipif(not int8_available(), reason="no oneDNN int8 convolutions or no VNNI on this CPU")


def speechlike(samples: int, seed: int) -> torch.Tensor:
    """Sums of a few sinusoids with a slow envelope, plus noise: activations with structure, unlike pure noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    freqs = 100 + 3000 * torch.rand(4, 1, generator=g)
    wav = torch.sin(2 * math.pi * freqs * t).sum(0) * (1 + torch.sin(2 * math.pi * 3 * t))
    return wav + 0.1 * torch.randn(samples, generator=g)


def trained_like(norm="batch", kernels=(10, 8, 4, 4, 4), strides=(5, 4, 2, 2, 2), ar="lstm") -> CPCModel:
    """A model whose BatchNorm statistics come from data, so folded layers have realistic scales."""
    torch.manual_seed(0)
    # input_norm window: the setting these tolerances were measured with (it was the default then)
    config = CPCModelConfig(encoder=ConvEncoderConfig(channels=48, norm=norm, kernels=kernels, strides=strides),
                            ar=AutoregressiveConfig(kind=ar, dim=32), predictor=PredictorConfig(steps=2),
                            input_norm="window")
    model = CPCModel(config)
    if norm == "batch":
        model.train()
        with torch.no_grad():
            for seed in range(3):
                model(torch.stack([speechlike(8000, 10 * seed + row) for row in range(4)]))
    return model.eval()


def reference_int8(encoder: Int8ConvEncoder, float_encoder: ConvEncoder, padded: torch.Tensor) -> torch.Tensor:
    """The int8 arithmetic written out in float: the input as a coarse channel and a residual channel 16x finer
    (whose weights are divided by 16), each layer's int8 weights (per output channel max / 127) and its uint8
    output (the calibrated scale, ReLU, round, saturate at 255); the last layer in float."""
    scale = encoder.input_scale
    coarse = torch.round(padded / scale).clamp(-128, 127)
    residual = torch.round((padded - coarse * scale) / (scale / RESIDUAL_STEPS)).clamp(-127, 127)
    x = torch.stack([coarse, residual], dim=1)[:, :, None, :] * scale
    layers = float_encoder.folded_convs()
    for index, (weight, bias, stride) in enumerate(layers):
        if index == 0:
            weight = torch.cat([weight, weight / RESIDUAL_STEPS], dim=1)
        weight_scale = weight.abs().amax(dim=(1, 2, 3)) / 127
        weight = torch.round(weight / weight_scale[:, None, None, None]) * weight_scale[:, None, None, None]
        x = torch.relu(nn.functional.conv2d(x, weight, bias, stride))
        if index < len(layers) - 1:
            out_scale = encoder.int8_layers[index][-1]
            x = torch.round(x / out_scale).clamp(0, 255) * out_scale
    return x[:, :, 0, :].transpose(1, 2)


@needs_int8
def test_one_layer_equals_the_reference_formula():
    model = trained_like(kernels=(10,), strides=(5,))
    padded = torch.stack([speechlike(4000, 1), speechlike(4000, 2)])
    encoder = Int8ConvEncoder(model.encoder, padded)
    out = encoder.encode_padded(padded)
    assert torch.allclose(out, reference_int8(encoder, model.encoder, padded), atol=1e-4)


@needs_int8
def test_five_layers_agree_with_the_reference_formula():
    model = trained_like()
    padded = torch.stack([speechlike(6000, 3), speechlike(6000, 4)])
    encoder = Int8ConvEncoder(model.encoder, padded)
    out, ref = encoder.encode_padded(padded), reference_int8(encoder, model.encoder, padded)
    # a product landing exactly between two uint8 steps may round either way in oneDNN: allow the rare 1-step
    # difference to travel, but the outputs must agree almost everywhere
    assert ((out - ref).abs() < 1e-3 * ref.abs().max()).float().mean() > 0.98
    assert (out - ref).norm() / ref.norm() < 0.005


@needs_int8
@pytest.mark.parametrize("layer", ["z", "c"])
def test_features_close_to_float(layer):
    model = trained_like()
    wavs = [speechlike(16000, seed) for seed in range(4)]
    quantized = int8_model(model, wavs[:2])
    for exact, approx in zip(extract_batch(model, wavs[2:], layer), extract_batch(quantized, wavs[2:], layer)):
        assert approx.shape == exact.shape
        assert (approx - exact).norm() / exact.norm() < 0.05
        assert nn.functional.cosine_similarity(approx, exact, dim=1).min() > 0.98


@needs_int8
def test_quantisation_changes_the_output():
    """Guards the tests above against comparing the float model with itself."""
    model = trained_like()
    wavs = [speechlike(16000, seed) for seed in range(2)]
    exact, approx = extract(model, wavs[0], "z"), extract(int8_model(model, wavs), wavs[0], "z")
    assert 1e-4 < (approx - exact).norm() / exact.norm()


@needs_int8
def test_chunked_and_batched_equal_whole_file():
    model = int8_model(trained_like(), [speechlike(16000, 0)])
    wav = speechlike(12345, 5)
    whole = extract(model, wav, "both")
    for chunk in (1000, 4321):
        assert torch.allclose(extract_chunked(model, wav, chunk, "both"), whole, atol=1e-4)
    others = [speechlike(3000, 6), wav]
    assert torch.allclose(extract_batch(model, others, "both")[1], whole, atol=1e-4)


@needs_int8
def test_bf16_math_with_int8_encoder_stays_close():
    model = int8_model(trained_like(), [speechlike(16000, 0)])
    wav = speechlike(8000, 7)
    fp32, bf16 = extract(model, wav, "c"), extract(model, wav, "c", precision="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - fp32).norm() / fp32.norm() < 0.05


@needs_int8
def test_no_norm_encoders_quantise_too():
    model = trained_like(norm="none")
    wavs = [speechlike(16000, seed) for seed in range(2)]
    exact, approx = extract(model, wavs[1], "z"), extract(int8_model(model, wavs[:1]), wavs[1], "z")
    assert (approx - exact).norm() / exact.norm() < 0.05


@needs_int8
def test_split_waveform_carries_the_finer_steps():
    wav = torch.linspace(-3, 3, 1001)[None]
    split = split_waveform(wav, 3 / 127).float() - WAVE_ZERO_POINT  # (1, 2, 1, samples)
    assert split.is_contiguous(memory_format=torch.channels_last)
    coarse, residual = split[0, 0, 0] * 3 / 127, split[0, 1, 0] * 3 / 127 / RESIDUAL_STEPS
    assert (coarse - wav[0]).abs().max() <= 3 / 127 / 2 + 1e-6  # 8 bits alone: half a step
    assert (coarse + residual - wav[0]).abs().max() <= 3 / 127 / RESIDUAL_STEPS / 2 + 1e-6  # 16x finer together


@needs_int8
def test_percentile_sets_the_saturation_point():
    x = torch.arange(1001.0)
    assert activation_scale(x, 100, 255) == pytest.approx(1000 / 255)
    assert activation_scale(x, 50, 255) == pytest.approx(500 / 255)
    assert activation_scale(-x, 100, 127) == pytest.approx(1000 / 127)  # signed input: magnitude


@needs_int8
def test_calibration_reads_at_most_max_seconds(monkeypatch):
    seen = []
    real = activation_scale

    def spy(x, percentile, levels):
        seen.append(x.shape[-1])
        return real(x, percentile, levels)

    monkeypatch.setattr("cpc.models.int8.activation_scale", spy)
    model = trained_like()
    int8_model(model, [speechlike(16000, 0), speechlike(16000, 1)], max_seconds=1.25)
    encoder = model.encoder
    assert seen[0] == 16000 + 4000 + 2 * (encoder.pad_left + encoder.pad_right)


@needs_int8
def test_extract_corpus_int8_keeps_keys_and_order():
    model = trained_like()
    utterances = [(f"u{i}", speechlike(4000 + 160 * i, i)) for i in range(11)]
    exact = dict(extract_corpus(model, utterances, "z", batch=4))
    approx = list(extract_corpus(model, iter(utterances), "z", batch=4, int8=True))
    assert [key for key, _ in approx] == [key for key, _ in utterances]
    for key, features in approx:
        assert features.shape == exact[key].shape
        assert (features - exact[key]).norm() / exact[key].norm() < 0.05


@needs_int8
def test_bad_models_and_modes_give_clear_errors():
    wav = [speechlike(4000, 0)]
    with pytest.raises(ValueError, match="BatchNorm or no norm .* 'channel' norm"):
        int8_model(trained_like(norm="channel"), wav)
    with pytest.raises(ValueError, match="BatchNorm or no norm .* 'channel' norm"):
        extract_corpus(trained_like(norm="channel"), [], int8=True)  # before any utterance is read
    with pytest.raises(ValueError, match="at least one utterance"):
        int8_model(trained_like(), [])
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        extract_corpus(trained_like(), [], precision="fp16")
    video = CPCModel(CPCModelConfig(modality="video"))
    with pytest.raises(ValueError, match="audio models"):
        int8_model(video, wav)
    with pytest.raises(ValueError, match=r"raw-waveform audio models .* reads logmel input \(--int8\): use fp32"):
        extract_corpus(CPCModel(cpc_logmel_config()), [], int8=True)
    quantized = int8_model(trained_like(), wav)
    quantized.train()
    with pytest.raises(RuntimeError, match="inference only"):
        quantized.encoder(torch.zeros(1, 4000))


def test_cpus_without_vnni_are_refused_with_the_reason(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False)
    assert not int8_available()
    with pytest.raises(RuntimeError, match="VNNI"):
        int8_model(trained_like(), [speechlike(4000, 0)])
