"""cpc.eval.upstream: the s3prl upstream contract (list of waveforms -> padded hidden states, downsample rates),
padded frames equal to each waveform's own run, and s3prl's own Featurizer when s3prl is importable."""

import pytest
import torch

import cpc.eval
from cpc.eval.features import extract
from cpc.eval.upstream import Upstream


# the presets' input norm, older checkpoints', and the log-mel front end
@pytest.fixture(scope="module", params=["causal", "window", "logmel"])
def checkpoint(tmp_path_factory, request):
    import dataclasses

    from cpc.checkpoint import model_record
    from cpc.models.cpc import CPCModel, cpc_logmel_config, cpc_small_config

    if request.param == "logmel":
        config = cpc_logmel_config()
        config = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, channels=32),
                                     ar=dataclasses.replace(config.ar, dim=32))
    else:
        config = dataclasses.replace(cpc_small_config(), input_norm=request.param)
    model = CPCModel(config)
    path = tmp_path_factory.mktemp("upstream") / "tiny.pt"
    torch.save({"model": {f"model.{k}": v for k, v in model.state_dict().items()},
                "model_config": model_record(model, "model.")}, path)
    return path


def wavs():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, generator=g) * 0.1 for n in (16000, 9000, 4321)]


def test_upstream_contract_and_lengths(checkpoint):
    up = cpc.eval.upstream(checkpoint)
    assert isinstance(up, Upstream) and isinstance(up, torch.nn.Module) and not up.training
    assert up.get_downsample_rates("hidden_states") == up.get_downsample_rates("last_hidden_state") == 160
    with torch.no_grad():
        out = up(wavs())
    z, c = out["hidden_states"]
    assert out["last_hidden_state"] is c and out["z"] is z and out["c"] is c
    assert z.shape == (3, 100, up.hidden_sizes[0]) and c.shape == (3, 100, up.hidden_sizes[1])
    model = cpc.load(checkpoint)
    for row, wav in enumerate(wavs()):
        frames = len(wav) // 160
        alone = up([wav])["c"][0]
        assert alone.shape[0] == frames
        assert torch.allclose(c[row, :frames], alone, atol=1e-5)  # padding does not reach a wav's own frames
        assert torch.allclose(c[row, :frames], extract(model, wav, "c"), atol=1e-5)  # = cpc extract
        assert torch.allclose(c[row, :frames], model.features(wav, "c"), atol=1e-5)  # = the model's own forward
        assert torch.allclose(z[row, :frames], extract(model, wav, "z"), atol=1e-5)
    with pytest.raises(KeyError, match="no feature 'logits'"):
        up.get_downsample_rates("logits")


def test_upstream_passes_gradients(checkpoint):
    up = cpc.eval.upstream(checkpoint).train()  # s3prl's --upstream_trainable
    up(wavs()[:2])["last_hidden_state"].sum().backward()
    for part in (up.model.encoder, up.model.ar):
        assert all(p.grad is not None for p in part.parameters())


def test_with_s3prl_featurizer(checkpoint):
    try:
        from s3prl.upstream.interfaces import Featurizer
    except Exception as error:  # not installed here (make test does not install it), or its imports fail
        pytest.skip(f"s3prl not importable ({type(error).__name__}: {error}); pip install s3prl==0.4.18 to run this")
    up = cpc.eval.upstream(checkpoint)
    batch = wavs()
    with torch.no_grad():
        out = up(batch)
    weighted = Featurizer(up, "hidden_states", upstream_device="cpu")  # z and c have one size in cpc_small
    assert weighted.downsample_rate == 160 and weighted.output_dim == up.hidden_sizes[1]
    features = weighted(batch, out)
    assert [len(f) for f in features] == [round(len(w) / 160) for w in batch]
    last = Featurizer(up, "last_hidden_state", upstream_device="cpu")(batch, out)
    for row, wav in enumerate(batch):
        frames = len(wav) // 160
        assert torch.allclose(last[row][:frames], up([wav])["c"][0], atol=1e-5)
    second = Featurizer(up, "hidden_states", upstream_device="cpu", layer_selection=1)(batch, out)
    assert all(torch.equal(a, b) for a, b in zip(second, last))
