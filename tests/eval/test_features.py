import dataclasses

import pytest
import torch

from cpc.eval.features import (FeatureStream, extract, extract_batch, extract_chunked, min_chunk_samples,
                               utterance_stats)
from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModel, CPCModelConfig, cpc_logmel_config
from cpc.models.encoders import ConvEncoderConfig
from cpc.models.heads import PredictorConfig


def model(norm="channel", ar="lstm", input_norm="window"):
    torch.manual_seed(0)
    config = CPCModelConfig(encoder=ConvEncoderConfig(channels=32, norm=norm), input_norm=input_norm,
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


@pytest.mark.parametrize("ar", ["gru", "transformer"])
def test_causal_input_norm_streams_and_batches_as_the_model_runs(ar):
    m = model("batch", ar, input_norm="causal")
    wavs = [torch.randn(n) * scale + 0.01 for n, scale in ((12345, 0.3), (3000, 0.02), (8123, 1.0))]
    with torch.no_grad():
        own = [torch.cat([m(w[None])["z"], m(w[None])["c"]], dim=-1)[0] for w in wavs]  # forward, one utterance
    for batched, wav, expected in zip(extract_batch(m, wavs, "both"), wavs, own):
        assert torch.allclose(batched, expected, atol=1e-5)
        for chunk in (160, 1000, 5000):  # no stats: the stream carries its running RMS across chunks
            stream = FeatureStream(m, layer="both")
            pieces = [stream.push(wav[start : start + chunk]) for start in range(0, len(wav), chunk)]
            assert torch.allclose(torch.cat(pieces + [stream.finish()]), expected, atol=1e-5)
        assert torch.allclose(extract_chunked(m, wav, 1000, "both"), expected, atol=1e-5)


def test_window_input_norm_stream_needs_the_utterance_stats():
    m = model()  # "window", as checkpoints saved before input_norm existed
    wav = torch.randn(6000) * 0.3 + 0.05
    whole = extract(m, wav)
    assert torch.allclose(FeatureStream(m, utterance_stats(wav)).push(wav)[:10], whole[:10], atol=1e-5)
    assert not torch.allclose(FeatureStream(m).push(wav)[:10], whole[:10], atol=1e-3)


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


def long_file(path, samples, seed=0):
    import numpy as np
    import soundfile as sf

    wav = (np.random.default_rng(seed).standard_normal(samples) * 0.2 + 0.03).astype(np.float32)
    sf.write(path, wav, 16000, subtype="FLOAT")
    return torch.from_numpy(wav)


@pytest.mark.parametrize("input_norm", ["causal", "window"])
def test_a_long_file_is_read_in_blocks_and_written_piece_by_piece_as_whole_encoding_gives(tmp_path, input_norm):
    """A "window" model takes the whole recording's mean and std from the first pass over the file."""
    import numpy as np

    from cpc.data.stages import SkipCounter
    from cpc.eval.features import LongRecording, StreamedFeatures, extract_corpus, read_files, save_npy
    from cpc.data.ingest import AudioItem

    m = model(input_norm=input_norm)
    wav = long_file(tmp_path / "long.wav", 20000)
    (tmp_path / "short").mkdir()
    short = long_file(tmp_path / "short" / "s.wav", 3000, seed=1)
    items = [AudioItem(str(tmp_path / "short" / "s.wav"), key="s"), AudioItem(str(tmp_path / "long.wav"), key="l"),
             AudioItem(str(tmp_path / "short" / "s.wav"), key="t")]
    read = list(read_files(items, 16000, SkipCounter(), long_samples=4000))
    assert [type(w) for _, w in read] == [np.ndarray, LongRecording, np.ndarray]
    assert read[1][1].samples == 20000 and np.allclose(read[1][1].stats, utterance_stats(wav), rtol=1e-5)
    out = list(extract_corpus(m, read, "both", batch=8, chunk_samples=4000))
    assert [key for key, _ in out] == ["s", "l", "t"]  # order kept: the batch before a long recording goes first
    assert isinstance(out[1][1], StreamedFeatures) and (out[1][1].frames, out[1][1].dim) == (125, 56)
    save_npy(tmp_path / "l.npy", out[1][1])
    assert torch.allclose(torch.from_numpy(np.load(tmp_path / "l.npy")), extract(m, wav, "both"), atol=1e-4)
    assert torch.allclose(out[0][1], extract(m, short, "both"), atol=1e-5)
    assert not (tmp_path / "l.npy.partial").exists()


def test_a_non_finite_file_is_skipped_and_counted_before_any_frame(tmp_path):
    import numpy as np
    import soundfile as sf

    from cpc.data.ingest import AudioItem
    from cpc.data.stages import SkipCounter
    from cpc.eval.features import read_files

    for name, length in (("short", 3000), ("long", 20000)):
        wav = np.full(length, 0.1, np.float32)
        wav[5 if name == "short" else 9000] = np.nan if name == "short" else np.inf  # the long: its third block
        sf.write(tmp_path / f"{name}.wav", wav, 16000, subtype="FLOAT")
    skips = SkipCounter()
    items = [AudioItem(str(tmp_path / f"{name}.wav"), key=name) for name in ("short", "long")]
    assert list(read_files(items, 16000, skips, long_samples=4000)) == []
    assert skips.report() == (f"2 non-finite samples (NaN or Inf) (e.g. {tmp_path / 'short.wav'}: it holds NaN or "
                              f"infinite samples (the first is sample 5), {tmp_path / 'long.wav'}: it holds NaN or "
                              "infinite samples (the first is sample 9000))")


def test_featurizers_stream_long_waveforms_in_chunks_with_the_same_frames():
    from cpc.eval.featurize import bounded_features

    from cpc.eval.features import extract_corpus

    m = model(input_norm="causal")
    wav = torch.randn(40000) * 0.2
    assert torch.allclose(bounded_features(m, wav, "c", chunk_seconds=0.5), extract(m, wav), atol=1e-5)
    whole_only = model("instance")  # a stream refuses it: it encodes every recording whole instead
    ((_, frames),) = extract_corpus(whole_only, [("a", wav)], chunk_samples=8000)
    assert torch.equal(frames, extract(whole_only, wav))
    assert torch.equal(bounded_features(whole_only, wav, "c", chunk_seconds=0.5), extract(whole_only, wav))

def test_bf16_precision_stays_close_in_every_way_and_returns_float32():
    m = model("batch", "lstm")
    wav = torch.randn(8000)
    exact = extract(m, wav, "both")
    for approx in (extract(m, wav, "both", "bf16"), extract_chunked(m, wav, 3000, "both", "bf16")):
        assert approx.dtype == torch.float32 and approx.shape == exact.shape
        assert 0 < (approx - exact).norm() / exact.norm() < 0.03  # bf16 did run, and stayed close
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        extract(m, wav, precision="fp16")


def test_c_bidir_batched_with_padding_equals_one_by_one_and_refuses_streaming():
    torch.manual_seed(0)
    m = CPCModel(CPCModelConfig(encoder=ConvEncoderConfig(channels=16), input_norm="causal",
                                ar=AutoregressiveConfig(kind="gru", dim=12), predictor=PredictorConfig(steps=3),
                                bidirectional=True)).eval()
    wavs = [torch.randn(n) for n in (3000, 8123, 1600)]
    for batched, wav in zip(extract_batch(m, wavs, "c_bidir"), wavs):  # the reverse g_ar starts at each row's end
        assert torch.allclose(batched, m.features(wav, "c_bidir"), atol=1e-5)
    with pytest.raises(ValueError, match="cannot be streamed"):
        FeatureStream(m, layer="c_bidir")


def logmel_model(ar="gru"):
    torch.manual_seed(0)
    config = cpc_logmel_config()
    config = dataclasses.replace(config, n_mels=24, encoder=dataclasses.replace(config.encoder, channels=32),
                                 ar=AutoregressiveConfig(kind=ar, dim=24, window=40),
                                 predictor=PredictorConfig(steps=3))
    return CPCModel(config).eval()


@pytest.mark.parametrize("ar", ["gru", "lstm", "transformer"])
def test_logmel_front_end_streams_and_batches_as_the_model_runs(ar):
    m = logmel_model(ar)
    wavs = [torch.randn(n) * scale + 0.01 for n, scale in ((12345, 0.3), (3000, 0.02), (8123, 1.0))]
    with torch.no_grad():
        own = [torch.cat([m(w[None])["z"], m(w[None])["c"]], dim=-1)[0] for w in wavs]  # forward, one utterance
    assert min_chunk_samples(m) == 1440  # one frame's field: a 400-sample window, then 6 more frames of 160
    for batched, wav, expected in zip(extract_batch(m, wavs, "both"), wavs, own):
        assert batched.shape == (len(wav) // 160, 32 + 24)
        assert torch.allclose(batched, expected, atol=1e-5)
        for chunk in (1, 160, 999, 5000):  # the stream carries the partial window and the running statistics
            stream = FeatureStream(m, layer="both")
            pieces = [stream.push(wav[start : start + chunk]) for start in range(0, len(wav), chunk)]
            assert torch.allclose(torch.cat(pieces + [stream.finish()]), expected, atol=1e-5)
        assert torch.allclose(extract_chunked(m, wav, 1440, "both"), expected, atol=1e-5)
        assert torch.allclose(m.features(wav, "both"), expected, atol=1e-5)


def test_logmel_stream_emits_a_frame_once_its_window_is_complete():
    stream = FeatureStream(logmel_model())
    assert stream.push(torch.zeros(159)).shape[0] == 0  # frame 0's window ends at sample 160
    assert stream.push(torch.zeros(1)).shape[0] == 1  # causal: no lookahead, the frame comes at once
    assert stream.push(torch.zeros(480)).shape[0] == 3
    assert stream.finish().shape[0] == 0 and stream.frames == 640 // 160
