import pytest
import torch

from cpc.eval.features import FeatureStream, extract, extract_batch, extract_chunked
from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModel, CPCModelConfig
from cpc.models.encoders import ConvEncoderConfig
from cpc.models.heads import PredictorConfig


def model(norm="channel", ar="lstm"):
    torch.manual_seed(0)
    config = CPCModelConfig(encoder=ConvEncoderConfig(channels=32, norm=norm),
                            ar=AutoregressiveConfig(kind=ar, dim=24, window=40), predictor=PredictorConfig(steps=3))
    m = CPCModel(config)
    if norm == "batch":  # non-trivial running statistics
        m.train()
        with torch.no_grad():
            m(torch.randn(4, 8000))
    return m.eval()


@pytest.mark.parametrize("samples", [160, 1000, 16000, 16159])
@pytest.mark.parametrize("layer, dim", [("z", 32), ("c", 24), ("both", 56)])
def test_frame_count_and_dims(samples, layer, dim):
    assert extract(model(), torch.randn(samples), layer).shape == (samples // 160, dim)


@pytest.mark.parametrize("norm", ["channel", "batch"])
@pytest.mark.parametrize("ar", ["gru", "lstm", "transformer"])
@pytest.mark.parametrize("chunk", [160, 1000, 4000, 20000])
def test_chunked_equals_whole_file(norm, ar, chunk):
    m = model(norm, ar)
    wav = torch.randn(12345) * 0.3 + 0.01
    whole = extract(m, wav, "both")
    assert torch.allclose(extract_chunked(m, wav, chunk, "both"), whole, atol=1e-4)


def test_batched_with_padding_equals_one_by_one():
    m = model()
    wavs = [torch.randn(n) for n in (3000, 8123, 161)]
    for batched, wav in zip(extract_batch(m, wavs), wavs):
        assert torch.allclose(batched, extract(m, wav), atol=1e-5)


def test_stream_emits_frames_as_audio_arrives():
    m = model()
    stream = FeatureStream(m)
    assert stream.push(torch.zeros(300)).shape[0] == 0  # frame 0 needs samples up to 313
    assert stream.push(torch.zeros(20)).shape[0] == 1
    stream.push(torch.zeros(1600))
    assert stream.frames + stream.finish().shape[0] == 1920 // 160


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown feature layer 'ctx'"):
        extract(model(), torch.randn(1000), "ctx")
    with pytest.raises(ValueError, match="at least 160 samples"):
        extract(model(), torch.randn(100))
    with pytest.raises(ValueError, match="instance norm .* cannot be streamed"):
        FeatureStream(model("instance"))


def test_model_features_api_matches_extract():
    m = model()
    wav = torch.randn(5000)
    assert torch.allclose(m.features(wav, "z"), extract(m, wav, "z"), atol=1e-5)
    assert m.features(torch.randn(2, 3200)).shape == (2, 20, 24)


def test_bf16_precision_stays_close_in_every_way_and_returns_float32():
    m = model("batch", "lstm")
    wav = torch.randn(8000)
    exact = extract(m, wav, "both")
    for approx in (extract(m, wav, "both", "bf16"), extract_chunked(m, wav, 3000, "both", "bf16")):
        assert approx.dtype == torch.float32 and approx.shape == exact.shape
        assert 0 < (approx - exact).norm() / exact.norm() < 0.03  # bf16 did run, and stayed close
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        extract(m, wav, precision="fp16")
