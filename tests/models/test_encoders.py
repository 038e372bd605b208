import pytest
import torch
from torch import nn

from cpc.models.encoders import (ConvEncoder, ConvEncoderConfig, LogMelFrames, causal_normalize, causal_standardize,
                                 receptive_field, standardize)


@pytest.mark.parametrize("samples", [160, 319, 320, 1000, 16000, 20480, 20479, 20639])
def test_frame_count_is_samples_floor_hop(samples):
    encoder = ConvEncoder(ConvEncoderConfig(channels=8, norm="none"))
    out = encoder(torch.randn(2, samples))
    assert out.shape == (2, samples // 160, 8)
    assert encoder.num_frames(samples) == samples // 160


def test_published_geometry():
    encoder = ConvEncoder(ConvEncoderConfig(channels=8))
    assert encoder.hop == 160
    assert encoder.field == receptive_field((10, 8, 4, 4, 4), (5, 4, 2, 2, 2)) == 465
    assert encoder(torch.randn(1, 20480)).shape[1] == 128


def test_frame_is_centred_on_its_own_hop():
    # A click at sample s must influence frame s // 160 the most (the frame whose window holds it).
    encoder = ConvEncoder(ConvEncoderConfig(channels=16, norm="none")).eval()
    with torch.no_grad():
        for p in encoder.parameters():
            p.abs_()  # positive weights: the response to a click spreads symmetrically over the receptive field
        base = encoder(torch.zeros(1, 4000))
        for s in (1000, 1040, 1119, 2000):
            wav = torch.zeros(1, 4000)
            wav[0, s] = 1.0
            delta = (encoder(wav) - base).abs().sum(-1)[0]
            assert abs(int(delta.argmax()) - s // 160) <= 1


@pytest.mark.parametrize("norm", ["channel", "batch", "instance", "none"])
def test_norms_build_and_run(norm):
    encoder = ConvEncoder(ConvEncoderConfig(channels=8, norm=norm))
    assert encoder(torch.randn(3, 3200)).shape == (3, 20, 8)


def test_channel_norm_normalises_each_frame():
    encoder = ConvEncoder(ConvEncoderConfig(channels=32, norm="channel", kernels=(10,), strides=(5,)))
    x = torch.randn(2, 1, 1, 500).contiguous(memory_format=torch.channels_last)
    normed = encoder.layers[1](encoder.layers[0](x))  # conv then channel norm, before ReLU
    assert normed.shape == (2, 32, 1, 99)
    assert torch.allclose(normed.mean(dim=1), torch.zeros(2, 1, 99), atol=1e-5)
    assert torch.allclose(normed.var(dim=1, unbiased=False), torch.ones(2, 1, 99), atol=1e-3)


def test_output_is_contiguous_batch_time_channels():
    out = ConvEncoder(ConvEncoderConfig(channels=8))(torch.randn(2, 3200))
    assert out.is_contiguous()


def test_bad_inputs_raise_clear_errors():
    encoder = ConvEncoder(ConvEncoderConfig(channels=8))
    with pytest.raises(ValueError, match=r"\(batch, samples\).*\(2, 1, 3200\)"):
        encoder(torch.randn(2, 1, 3200))
    with pytest.raises(ValueError, match="at least 160 samples"):
        encoder(torch.randn(2, 100))
    with pytest.raises(ValueError, match="unknown encoder norm 'group'"):
        ConvEncoder(ConvEncoderConfig(norm="group"))
    with pytest.raises(ValueError, match="same length"):
        ConvEncoder(ConvEncoderConfig(kernels=(10, 8), strides=(5,)))


def test_standardize():
    wav = 3.0 + 0.01 * torch.randn(4, 5000)
    out = standardize(wav)
    assert torch.allclose(out.mean(-1), torch.zeros(4), atol=1e-4)
    assert torch.allclose(out.std(-1, unbiased=False), torch.ones(4), atol=1e-3)


def test_causal_normalize_is_the_running_rms_formula():
    wav = torch.randn(2, 300, dtype=torch.float64) * torch.tensor([[0.1], [5.0]], dtype=torch.float64)
    level, prior = 0.1, 50
    out, (total, count) = causal_normalize(wav, level, prior)
    for s in (0, 1, 49, 299):  # x[s] / sqrt((sum_{u<=s} x[u]^2 + n0 level^2) / (s + 1 + n0)), written out
        rms = ((wav[:, : s + 1] ** 2).sum(-1) + prior * level**2) / (s + 1 + prior)
        assert torch.allclose(out[:, s], wav[:, s] / rms.sqrt(), rtol=1e-12)
    assert count == 300 and torch.allclose(total, (wav**2).sum(-1))
    # The gain adapts to the level: two rows 50x apart in level come out at about the same RMS once the 50-sample
    # prior is outweighed (a fixed gain would leave them 50x apart).
    late = out[:, 150:].pow(2).mean(-1).sqrt()
    assert torch.all((late > 0.8) & (late < 1.25))


@pytest.mark.parametrize("chunk", [1, 7, 160, 1000])
def test_causal_normalize_streamed_equals_offline(chunk):
    wav = torch.randn(3, 4321) * 0.3 + 0.05
    whole, _ = causal_normalize(wav, 0.1, 1600)
    carry, pieces = None, []
    for start in range(0, wav.shape[1], chunk):
        piece, carry = causal_normalize(wav[:, start : start + chunk], 0.1, 1600, carry)
        pieces.append(piece)
    assert carry[1] == 4321
    streamed = torch.cat(pieces, dim=1)
    assert streamed.dtype == torch.float32
    assert torch.allclose(streamed, whole, rtol=1e-6, atol=1e-7)


def test_causal_normalize_ignores_the_future_and_autocast():
    wav = torch.randn(1, 2000)
    changed = wav.clone()
    changed[:, 1200:] *= 50
    assert torch.equal(causal_normalize(wav, 0.1, 100)[0][:, :1200], causal_normalize(changed, 0.1, 100)[0][:, :1200])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the sums stay in float64: same result, float32 out
        inside, _ = causal_normalize(wav, 0.1, 100)
    assert inside.dtype == torch.float32 and torch.equal(inside, causal_normalize(wav, 0.1, 100)[0])
    silence, _ = causal_normalize(torch.zeros(1, 500), 0.1, 100)  # the prior keeps silence finite
    assert torch.equal(silence, torch.zeros(1, 500))


@pytest.mark.parametrize("samples", [400, 16000, 20479])
def test_logmel_frames_align_with_encoder(samples):
    assert LogMelFrames(16000, 160, n_mels=40)(torch.randn(2, samples)).shape == (2, samples // 160, 40)


@pytest.mark.parametrize("norm", ["batch", "channel", "instance"])
def test_recomputed_first_block_gives_the_same_gradients_and_running_stats(norm):
    torch.manual_seed(0)
    stored = ConvEncoder(ConvEncoderConfig(channels=16, norm=norm, recompute_first=False))
    recomputed = ConvEncoder(ConvEncoderConfig(channels=16, norm=norm, recompute_first=True))
    recomputed.load_state_dict(stored.state_dict())
    wav = torch.randn(3, 1600)
    for encoder in (stored, recomputed):
        (encoder(wav) ** 2).mean().backward()
    for (name, a), b in zip(stored.named_parameters(), recomputed.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7, msg=name)
    # BatchNorm's running statistics move once per forward, not again when backward recomputes the block.
    for (name, a), b in zip(stored.named_buffers(), recomputed.buffers()):
        torch.testing.assert_close(b, a, msg=name)


def test_recomputed_first_block_keeps_less_for_backward():
    def saved_bytes(recompute: bool) -> int:
        encoder = ConvEncoder(ConvEncoderConfig(channels=32, recompute_first=recompute))
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            encoder(torch.randn(2, 16000))
        return total

    first_layer_output = 2 * 32 * (16000 + 240) // 5 * 4  # fp32 frames of the first conv over the padded input
    assert saved_bytes(False) - saved_bytes(True) >= 0.9 * first_layer_output


def test_eval_folds_batch_norm_into_the_convs_exactly():
    torch.manual_seed(0)
    encoder = ConvEncoder(ConvEncoderConfig(channels=16, norm="batch"))
    for _ in range(3):  # move the running statistics away from their initial 0 / 1
        encoder(torch.randn(4, 3200) * 3 + 1)
    encoder.eval()
    wav = torch.randn(2, 4000)
    with torch.no_grad():
        folded = encoder(wav)
        layer_by_layer = encoder.layers(nn.functional.pad(wav, (encoder.pad_left, encoder.pad_right))[:, None, None, :])
    torch.testing.assert_close(folded, layer_by_layer.permute(0, 2, 3, 1).squeeze(1), rtol=1e-5, atol=1e-5)
    encoder.layers[1].weight.data.mul_(2)  # folded afresh on every call: a changed norm is never stale
    with torch.no_grad():
        assert not torch.allclose(encoder(wav), folded, atol=1e-3)


def test_causal_standardize_is_the_running_mean_and_variance_formula():
    frames = torch.randn(2, 300, 3, dtype=torch.float64) * 2 - 4
    prior, mean0, std0 = 20, -5.0, 4.5
    out, (total, squares, count) = causal_standardize(frames, prior, mean0, std0)
    for t in (0, 1, 19, 299):  # per band: (x_t - m_t) / sqrt(v_t + eps), m_t and v_t over the prior and frames <= t
        seen = frames[:, : t + 1]
        mean = (seen.sum(1) + prior * mean0) / (t + 1 + prior)
        variance = ((seen**2).sum(1) + prior * (std0**2 + mean0**2)) / (t + 1 + prior) - mean**2
        assert torch.allclose(out[:, t].double(), (frames[:, t] - mean) / (variance + 1e-5).sqrt(), rtol=1e-5)
    assert count == 300 and torch.allclose(total, frames.sum(1)) and torch.allclose(squares, (frames**2).sum(1))
    late = out[:, 150:]  # the prior is outweighed: each band comes out near zero mean, unit variance
    assert late.mean(1).abs().max() < 0.3 and torch.all((late.std(1) > 0.8) & (late.std(1) < 1.25))


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_causal_standardize_streamed_equals_offline_and_ignores_the_future(chunk):
    frames = torch.randn(2, 345, 4) * 3 - 5
    whole, _ = causal_standardize(frames, 25, -5.0, 4.5)
    carry, pieces = None, []
    for start in range(0, frames.shape[1], chunk):
        piece, carry = causal_standardize(frames[:, start : start + chunk], 25, -5.0, 4.5, carry)
        pieces.append(piece)
    assert torch.allclose(torch.cat(pieces, dim=1), whole, rtol=1e-5, atol=1e-6)
    changed = frames.clone()
    changed[:, 200:] *= 10
    assert torch.equal(causal_standardize(changed, 25, -5.0, 4.5)[0][:, :200], whole[:, :200])


def test_causal_logmel_frame_sees_samples_up_to_its_own_end():
    mel = LogMelFrames(16000, 160, n_mels=40, causal=True)
    wav = torch.randn(1, 4000)
    changed = wav.clone()
    changed[:, 1600:] = torch.randn(1, 2400)  # frame 9 ends at sample 1600; frame 10 ends at 1760
    a, b = mel(wav), mel(changed)
    assert a.shape == (1, 25, 40)
    assert torch.equal(a[:, :10], b[:, :10]) and not torch.allclose(a[:, 10], b[:, 10])
    centred = LogMelFrames(16000, 160, n_mels=40)  # the baseline's window looks 120 samples past its frame
    assert not torch.allclose(centred(wav)[:, 9], centred(changed)[:, 9])


def test_causal_conv_encoder_over_frames():
    torch.manual_seed(0)
    encoder = ConvEncoder(ConvEncoderConfig(channels=8, kernels=(3, 3, 3), strides=(1, 1, 1), norm="channel"),
                          in_channels=5, causal=True)
    assert (encoder.field, encoder.pad_left, encoder.pad_right) == (7, 6, 0)
    frames = torch.randn(2, 20, 5)
    changed = frames.clone()
    changed[:, 12:] += 1.0
    a, b = encoder(frames), encoder(changed)
    assert a.shape == (2, 20, 8)
    assert torch.equal(a[:, :12], b[:, :12]) and not torch.allclose(a[:, 12], b[:, 12])
    with pytest.raises(ValueError, match=r"expects frames of shape \(batch, steps, 5\); got shape \(2, 20\)"):
        encoder(torch.randn(2, 20))
