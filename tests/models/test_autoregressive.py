import pytest
import torch

from cpc.models.autoregressive import AutoregressiveConfig, build_autoregressive, causal_alibi_bias, alibi_slopes

CONFIGS = {
    "gru": AutoregressiveConfig(kind="gru", dim=16, layers=2),
    "lstm": AutoregressiveConfig(kind="lstm", dim=16, layers=2),
    "transformer": AutoregressiveConfig(kind="transformer", dim=16, layers=2, heads=4, window=None),
    "transformer_window": AutoregressiveConfig(kind="transformer", dim=16, layers=2, heads=4, window=5),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_no_future_leakage(name):
    ar = build_autoregressive(CONFIGS[name], input_dim=8).eval()
    x = torch.randn(2, 30, 8)
    t = 17
    changed = x.clone()
    changed[:, t + 1 :] = torch.randn(2, 30 - t - 1, 8) * 10
    out, _ = ar(x)
    out_changed, _ = ar(changed)
    assert torch.equal(out[:, : t + 1], out_changed[:, : t + 1])
    assert not torch.allclose(out[:, t + 1 :], out_changed[:, t + 1 :])


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("chunks", [(30,), (1,) * 30, (7, 1, 12, 10), (3, 27)])
def test_streaming_equals_full_sequence(name, chunks):
    ar = build_autoregressive(CONFIGS[name], input_dim=8).eval()
    x = torch.randn(2, 30, 8)
    full, _ = ar(x)
    state, pieces, start = None, [], 0
    for size in chunks:
        out, state = ar(x[:, start : start + size], state)
        pieces.append(out)
        start += size
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_transformer_runs_on_lengths_longer_than_training_windows():
    ar = build_autoregressive(CONFIGS["transformer_window"], input_dim=8)
    assert ar(torch.randn(1, 1000, 8))[0].shape == (1, 1000, 16)


def test_windowed_state_is_bounded():
    ar = build_autoregressive(CONFIGS["transformer_window"], input_dim=8).eval()
    state = None
    for _ in range(20):
        _, state = ar(torch.randn(1, 3, 8), state)
    assert all(k.shape[2] == 4 and v.shape[2] == 4 for k, v in state)


def test_alibi_bias_reference():
    slopes = alibi_slopes(2)
    bias = causal_alibi_bias(2, 4, slopes, window=2)
    # queries are positions 2 and 3 of 4 keys; window 2 allows distances 0 and 1.
    inf = float("-inf")
    for h, m in enumerate(slopes.tolist()):
        expected = torch.tensor([[inf, -m, 0.0, inf], [inf, inf, -m, 0.0]])
        assert torch.equal(bias[h], expected)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown autoregressive kind 'rnn'.*gru"):
        build_autoregressive(AutoregressiveConfig(kind="rnn"), 8)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrence_runs_in_float32_under_bf16_autocast(kind):
    """oneDNN has no bf16 LSTM on AVX2 CPUs (autocast made it fail) and cuDNN's autocast would pick fp16."""
    ar = build_autoregressive(AutoregressiveConfig(kind=kind, dim=16), input_dim=8).eval()
    x = torch.randn(2, 9, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = ar(x.bfloat16())
    assert out.dtype == torch.float32 and torch.allclose(out, ar(x)[0], atol=0.02)
