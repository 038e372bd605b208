import pytest
import torch

from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModel, CPCModelConfig, cpc_base, cpc_paper, cpc_small
from cpc.models.encoders import ConvEncoderConfig
from cpc.models.heads import PredictionHeads, PredictorConfig


@pytest.mark.parametrize("samples", [2080, 16000, 20480])
def test_shapes(samples):
    model = cpc_small()
    out = model(torch.randn(3, samples))
    frames = samples // 160
    assert out["z"].shape == (3, frames, 64)
    assert out["c"].shape == (3, frames, 64)
    assert out["pred"].shape == (3, frames, 4, 64)


@pytest.mark.parametrize(
    "builder, channels, norm, ar, predictor",
    [(cpc_paper, 512, "batch", "gru", "linear"), (cpc_base, 256, "channel", "lstm", "transformer")],
)
def test_published_builders(builder, channels, norm, ar, predictor):
    config = builder().config
    assert (config.encoder.channels, config.encoder.norm, config.ar.kind, config.ar.dim) == (channels, norm, ar, 256)
    assert (config.predictor.kind, config.predictor.steps) == (predictor, 12)
    assert config.encoder.kernels == (10, 8, 4, 4, 4) and config.encoder.strides == (5, 4, 2, 2, 2)


@pytest.mark.parametrize("ar_kind", ["gru", "lstm", "transformer"])
@pytest.mark.parametrize("predictor", ["linear", "transformer"])
def test_context_and_predictions_are_causal(ar_kind, predictor):
    config = CPCModelConfig(
        encoder=ConvEncoderConfig(channels=16, norm="channel"),
        ar=AutoregressiveConfig(kind=ar_kind, dim=16),
        predictor=PredictorConfig(kind=predictor, steps=3),
        standardize=False,  # standardisation uses whole-window statistics on purpose; causality is g_ar's job
    )
    model = CPCModel(config).eval()
    wav = torch.randn(1, 8000)
    cut = 4000  # frames whose encoder field lies wholly before the cut must not change
    changed = wav.clone()
    changed[:, cut:] = torch.randn(1, 8000 - cut)
    safe = (cut - model.encoder.field + model.encoder.pad_left) // 160  # last frame with field before the cut
    with torch.no_grad():
        a, b = model(wav), model(changed)
    assert torch.equal(a["c"][:, : safe + 1], b["c"][:, : safe + 1])
    assert torch.equal(a["pred"][:, : safe + 1], b["pred"][:, : safe + 1])
    assert not torch.allclose(a["c"][:, safe + 3 :], b["c"][:, safe + 3 :])


def test_heads_row_k_is_linear_map_k():
    heads = PredictionHeads(context_dim=6, target_dim=5, steps=3, kind="linear")
    c = torch.randn(2, 7, 6)
    pred = heads(c)
    weight, bias = heads.project.weight, heads.project.bias
    for k in range(3):
        expected = c @ weight[k * 5 : (k + 1) * 5].T + bias[k * 5 : (k + 1) * 5]
        assert torch.allclose(pred[:, :, k], expected, atol=1e-6)


@pytest.mark.parametrize("target, dim", [("z", 64), ("logmel", 80)])
def test_regression_head_outputs(target, dim):
    config = cpc_small().config
    config.regression_target = target
    out = CPCModel(config)(torch.randn(2, 4800))
    assert out["regression"].shape == (2, 30, 4, dim)
    assert out["regression_target"].shape == (2, 30, dim)
    assert not out["regression_target"].requires_grad


def test_bad_inputs():
    model = cpc_small()
    with pytest.raises(ValueError, match=r"\(batch, samples\).*\(4800,\)"):
        model(torch.randn(4800))
    with pytest.raises(ValueError, match="unknown regression_target 'mel'"):
        CPCModel(CPCModelConfig(regression_target="mel"))


def test_targets_come_from_the_other_version_and_context_from_the_input():
    torch.manual_seed(0)
    model = cpc_small().eval()
    x, clean = torch.randn(2, 3200), torch.randn(2, 3200)
    both = model(x, clean)
    assert torch.allclose(both["c"], model(x)["c"], atol=1e-5)  # c_t sees the (augmented) input
    assert torch.allclose(both["z"], model(clean)["z"], atol=1e-5)  # positives and negatives: the other version
    with pytest.raises(ValueError, match="must have the input's shape"):
        model(x, clean[:, :1600])
