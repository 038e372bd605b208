import dataclasses

import pytest
import torch

from cpc.config import from_dict
from cpc.models.cpc import CPCModel, CPCModelConfig, cpc_logmel_config, cpc_small_config, cpc_video_config
from cpc.models.encoders import LogMelFrames, causal_standardize
from cpc.models.inputs import INPUT_KINDS, LogMelInput, VideoInput, WaveformInput, adapter_class


def small_logmel_config(**changes) -> CPCModelConfig:
    """cpc_logmel_config at test size: 16 channels, 20 bands, GRU 16, K = 3."""
    config = cpc_logmel_config()
    encoder = dataclasses.replace(config.encoder, channels=16)
    ar = dataclasses.replace(config.ar, dim=16)
    predictor = dataclasses.replace(config.predictor, steps=3)
    return dataclasses.replace(config, encoder=encoder, ar=ar, predictor=predictor, n_mels=20, **changes)


def test_each_config_gets_its_adapter_and_old_configs_read_raw_audio():
    old = dataclasses.asdict(cpc_small_config())
    del old["frontend"], old["logmel"]  # a config written before the log-mel front end existed
    assert adapter_class(from_dict(CPCModelConfig, old)) is WaveformInput
    assert adapter_class(cpc_video_config()) is VideoInput
    assert adapter_class(cpc_logmel_config()) is LogMelInput
    assert set(INPUT_KINDS) == {"waveform", "logmel", "video"}
    for config, key, target, hop in [(cpc_small_config(), "wav", "wav_future", 160),
                                     (cpc_logmel_config(), "wav", "wav_future", 160),
                                     (cpc_video_config(), "frames", None, 1)]:
        model = CPCModel(config)
        assert (model.inputs.input_key, model.inputs.target_key, model.hop, config.hop) == (key, target, hop, hop)


def test_bad_front_end_settings_name_the_key():
    with pytest.raises(ValueError, match=r"unknown frontend 'mfcc'; choose one of \('waveform', 'logmel'\)"):
        CPCModel(dataclasses.replace(cpc_small_config(), frontend="mfcc"))
    with pytest.raises(ValueError, match="frontend 'logmel' reads audio; a video model reads its frames"):
        CPCModel(dataclasses.replace(cpc_video_config(), frontend="logmel"))
    with pytest.raises(ValueError, match="input_norm 'window' would need the whole utterance: set input_norm to"):
        CPCModel(small_logmel_config(input_norm="window"))
    with pytest.raises(ValueError, match=r"'logmel' with frontend 'logmel' .* needs encoder strides of 1"):
        config = small_logmel_config(regression_target="logmel")
        CPCModel(dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, strides=(1, 2, 1))))
    with pytest.raises(ValueError, match="regression_target 'pixels' needs video; audio can regress 'z' or 'logmel'"):
        CPCModel(small_logmel_config(regression_target="pixels"))


def test_logmel_input_is_causal_logmel_frames_standardised_by_running_statistics():
    config = small_logmel_config()
    model = CPCModel(config)
    wav = 0.1 * torch.randn(2, 4000)
    frames = LogMelFrames(16000, 160, 20, causal=True)(wav)
    expected, _ = causal_standardize(frames, 0.25 * 16000 / 160, -5.0, 4.5)
    assert torch.allclose(model.prepare(wav), expected)
    none = CPCModel(small_logmel_config(input_norm="none"))
    assert torch.allclose(none.prepare(wav), frames)


@pytest.mark.parametrize("chunk", [1, 100, 160, 999, 4000])
def test_logmel_input_prepared_in_chunks_equals_whole(chunk):
    adapter = CPCModel(small_logmel_config()).inputs
    wav = 0.2 * torch.randn(1, 5555)
    whole = adapter.prepare(wav)
    carry, pieces = None, []
    for start in range(0, wav.shape[1], chunk):
        piece, carry = adapter.prepare_chunk(wav[:, start : start + chunk], carry, (0.0, 1.0))
        pieces.append(piece)
    streamed = torch.cat(pieces, dim=1)
    assert streamed.shape == whole.shape == (1, 5555 // 160, 20)
    assert torch.allclose(streamed, whole, atol=1e-4)


def test_logmel_model_trains_on_log_mel_frames_and_takes_augmented_targets():
    torch.manual_seed(0)
    model = CPCModel(small_logmel_config(regression_target="logmel")).eval()
    x, clean = 0.1 * torch.randn(2, 3200), 0.1 * torch.randn(2, 3200)
    out = model(x)
    assert out["z"].shape == (2, 20, 16) and out["pred"].shape == (2, 20, 3, 16)
    assert torch.equal(out["regression_target"], model.prepare(x))  # its own standardised input frames
    both = model(x, clean)
    assert torch.allclose(both["c"], out["c"], atol=1e-5) and torch.allclose(both["z"], model(clean)["z"], atol=1e-5)
    assert model.features(x[0]).shape == (20, 16) and model.features(x, "both").shape == (2, 20, 32)
    assert model.inputs.throughput(x) == (0.4, "audio-s")
