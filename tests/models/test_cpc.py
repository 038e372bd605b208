import dataclasses
from pathlib import Path

import pytest
import torch

from cpc.checkpoint import load
from cpc.config import from_dict
from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import (CPCModel, CPCModelConfig, cpc_base, cpc_base_config, cpc_logmel, cpc_logmel_config,
                            cpc_paper, cpc_paper_config, cpc_small, cpc_small_config, cpc_video_config)
from cpc.models.encoders import standardize
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


def small_transformer_config() -> CPCModelConfig:
    """cpc_small with a Transformer g_ar (no preset has one): its causal mask must hold with the input norm too."""
    config = cpc_small_config()
    return dataclasses.replace(config, ar=dataclasses.replace(config.ar, kind="transformer"))


@pytest.mark.parametrize("make_config", [cpc_paper_config, cpc_base_config, cpc_small_config,
                                         small_transformer_config])
def test_causal_input_norm_keeps_every_builder_causal(make_config):
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(1, 16000)
    cut = 12000
    changed = wav.clone()
    changed[:, cut:] = 0.3 * torch.randn(1, 16000 - cut)  # louder: whole-window statistics would shift

    def run(input_norm):
        torch.manual_seed(1)
        model = CPCModel(dataclasses.replace(make_config(), input_norm=input_norm)).eval()
        with torch.no_grad():
            return model(wav), model(changed), model.encoder

    # Without normalisation the first z frame that moves is the first whose receptive field reaches the cut.
    a, b, encoder = run("none")
    first = int((a["z"] != b["z"]).any(-1)[0].nonzero()[0])
    assert first == -(-(cut - encoder.field + 1 + encoder.pad_left) // encoder.hop)
    assert torch.equal(a["c"][:, :first], b["c"][:, :first])
    a, b, _ = run("causal")
    for key in ("z", "c"):
        assert (a[key][:, :first] - b[key][:, :first]).abs().max() <= 1e-6
        assert not torch.equal(a[key][:, first], b[key][:, first])
    a, b, _ = run("window")  # the per-window statistics leak the future into every frame: the test can fail
    assert (a["c"][:, :first] - b["c"][:, :first]).abs().max() > 1e-4


def test_presets_are_causal_and_old_configs_keep_window_standardisation():
    assert all(make().input_norm == "causal" for make in (cpc_paper_config, cpc_base_config, cpc_small_config))
    # A checkpoint saved before `input_norm` existed records `standardize` but no `input_norm`.
    old = dataclasses.asdict(cpc_small_config())
    del old["input_norm"], old["input_level"], old["input_prior_seconds"]
    assert from_dict(CPCModelConfig, old).resolved_input_norm == "window"
    assert from_dict(CPCModelConfig, {**old, "standardize": False}).resolved_input_norm == "none"
    assert dataclasses.replace(cpc_small_config(), standardize=False).resolved_input_norm == "none"
    wav = torch.randn(2, 3200) + 0.5
    assert torch.equal(CPCModel(from_dict(CPCModelConfig, old)).prepare(wav), standardize(wav))
    with pytest.raises(ValueError, match="unknown input_norm 'rms'"):
        CPCModel(dataclasses.replace(cpc_small_config(), input_norm="rms"))


def test_video_input_norm_is_per_frame_unless_none():
    frames = torch.randint(0, 256, (1, 4, 8, 8, 1), dtype=torch.uint8)
    config = cpc_video_config()
    window = CPCModel(config).prepare(frames)
    assert torch.equal(CPCModel(dataclasses.replace(config, input_norm="causal")).prepare(frames), window)
    assert torch.equal(CPCModel(dataclasses.replace(config, input_norm="none")).prepare(frames), frames.float() / 255)


def test_a_checkpoint_saved_before_input_norm_keeps_window_standardisation(tmp_path):
    state = torch.load(Path(__file__).parents[2] / "recipes/demo/cpc_shipped.pt", weights_only=True)
    del state["model_config"]["config"]["input_norm"]  # what every checkpoint written before the key holds
    torch.save(state, tmp_path / "old.pt")
    model = load(tmp_path / "old.pt").eval()
    assert model.config.resolved_input_norm == "window"
    wav = 0.1 * torch.randn(8000) + 0.02
    with torch.no_grad():  # what every release before input_norm computed: whole-input standardisation
        z = model.encoder(standardize(wav[None]))
        c, _ = model.ar(z)
    assert torch.equal(model.features(wav, "both")[None], torch.cat([z, c], dim=-1))


def bidirectional_model() -> CPCModel:
    torch.manual_seed(0)
    return CPCModel(CPCModelConfig(encoder=ConvEncoderConfig(channels=16, norm="channel"), input_norm="causal",
                                   ar=AutoregressiveConfig(kind="gru", dim=12), predictor=PredictorConfig(steps=3),
                                   bidirectional=True)).eval()


def test_c_bidir_is_forward_context_then_a_reverse_summary_of_the_frames_from_t_on():
    m = bidirectional_model()
    wav = torch.randn(4000) * 0.2
    frames, t = 4000 // 160, 10
    later = wav.clone()
    later[(t + 3) * 160 :] += torch.randn(len(wav) - (t + 3) * 160)  # beyond frame t's receptive field
    both, moved = m.features(wav, "c_bidir"), m.features(later, "c_bidir")
    assert both.shape == (frames, 24)
    assert torch.equal(both[:, :12], m.features(wav, "c"))  # the forward half is c itself
    assert torch.allclose(both[:t, :12], moved[:t, :12])  # the forward half stays causal
    assert not torch.allclose(both[:t, 12:], moved[:t, 12:], atol=1e-4)  # the reverse half sees later samples
    with torch.no_grad():  # the reverse half is the reverse g_ar run from the last frame back
        z = m.features(wav, "z")[None]
        expected = m.ar_reverse(z.flip(1))[0].flip(1)[0]
    assert torch.allclose(both[:, 12:], expected, atol=1e-6)


def test_bidirectional_forward_predicts_reverse_time_and_old_configs_have_no_reverse_g_ar():
    m = bidirectional_model()
    out = m(torch.randn(2, 3200))
    assert out["pred_reverse"].shape == out["pred"].shape == (2, 20, 3, 16)
    plain = CPCModel(CPCModelConfig(encoder=ConvEncoderConfig(channels=16), ar=AutoregressiveConfig(dim=12),
                                    predictor=PredictorConfig(steps=3)))
    assert plain.ar_reverse is None and "pred_reverse" not in plain(torch.randn(2, 3200))
    with pytest.raises(ValueError, match="model.bidirectional: true"):
        plain.features(torch.randn(3200), "c_bidir")
    assert from_dict(CPCModelConfig, {"input_norm": "window"}).bidirectional is False  # checkpoints before the key


@pytest.mark.parametrize("ar_kind", ["gru", "transformer"])
def test_logmel_builder_is_causal(ar_kind):
    torch.manual_seed(0)
    config = cpc_logmel_config()
    model = CPCModel(dataclasses.replace(config, ar=dataclasses.replace(config.ar, kind=ar_kind))).eval()
    assert (model.hop, model.field) == (160, 400 + 6 * 160)  # one 25 ms window, then 3 convs of kernel 3
    wav = 0.1 * torch.randn(1, 16000)
    for cut in (8000, 8050, 12159):  # samples from `cut` on change; frame cut // 160 is the first to see them
        changed = wav.clone()
        changed[:, cut:] = 0.3 * torch.randn(1, 16000 - cut)
        with torch.no_grad():
            a, b = model(wav), model(changed)
        first = cut // 160
        for key in ("z", "c", "pred"):
            assert (a[key][:, :first] - b[key][:, :first]).abs().max() <= 1e-6
            assert not torch.equal(a[key][:, first], b[key][:, first])


def test_logmel_builder():
    config = cpc_logmel().config
    assert (config.frontend, config.n_mels, config.input_norm) == ("logmel", 80, "causal")
    assert (config.encoder.channels, config.encoder.kernels, config.encoder.strides) == (128, (3, 3, 3), (1, 1, 1))
    assert (config.ar.kind, config.ar.dim, config.predictor.kind, config.predictor.steps) == ("gru", 256, "linear", 12)
    out = cpc_logmel()(0.1 * torch.randn(2, 4800))
    assert out["z"].shape == (2, 30, 128) and out["pred"].shape == (2, 30, 12, 128)
