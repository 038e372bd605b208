"""cpc export: the ONNX streaming extractor run by onnxruntime gives torch's FeatureStream frames chunk by chunk."""

import dataclasses

import numpy as np
import pytest
import torch

import cpc
from cpc.cli import main
from cpc.errors import MissingExtra, require
from cpc.eval.export import OnnxFeatureStream, export_onnx  # imports onnx and onnxruntime only when used
from cpc.eval.features import FeatureStream, extract, utterance_stats
from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModel, cpc_base_config

SHIPPED = "recipes/demo/cpc_shipped.pt"
TOLERANCE = 1e-4  # measured: at most 6e-6 on the shipped checkpoint (float32 rounding of two runtimes)


def speech_like(samples: int, seed: int = 0) -> np.ndarray:
    """Noise with a slowly changing loudness, so the input normalisation has something to follow."""
    rng = np.random.default_rng(seed)
    envelope = 0.02 + 0.2 * np.abs(np.sin(np.arange(samples) / 3000.0))
    return (rng.standard_normal(samples) * envelope).astype(np.float32)


def assert_streams_agree(model, path, wav, chunk, layer="c"):
    """Every full chunk's frames equal FeatureStream.push's for it; the tail (partial chunk + finish) as well."""
    stats = utterance_stats(wav)
    torch_stream, onnx_stream = FeatureStream(model, stats, layer), OnnxFeatureStream(path, stats)
    full = len(wav) // chunk * chunk
    for start in range(0, full, chunk):
        expected = torch_stream.push(wav[start : start + chunk]).numpy()
        got = onnx_stream.push(wav[start : start + chunk])
        assert got.shape == expected.shape and np.abs(got - expected).max() < TOLERANCE
    expected = np.concatenate([torch_stream.push(wav[full:]).numpy(), torch_stream.finish().numpy()])
    got = np.concatenate([onnx_stream.push(wav[full:]), onnx_stream.finish()])
    assert got.shape == expected.shape and np.abs(got - expected).max() < TOLERANCE
    assert onnx_stream.emitted == len(wav) // model.hop


@pytest.mark.child_process
def test_exported_shipped_checkpoint_streams_as_torch_does(tmp_path, capsys):
    main(["export", SHIPPED, str(tmp_path / "cpc.onnx"), "--chunk-seconds", "0.25"])
    assert "4000 samples (0.25 s) per call -> 25 frames of c (256-dim)" in capsys.readouterr().out
    model, wav = cpc.load(SHIPPED), speech_like(16000 * 2 + 1234)
    assert_streams_agree(model, tmp_path / "cpc.onnx", wav, 4000)
    # and the stream's frames are the whole file's
    onnx_stream = OnnxFeatureStream(tmp_path / "cpc.onnx", utterance_stats(wav))
    streamed = np.concatenate([onnx_stream.push(wav[:5000]), onnx_stream.push(wav[5000:]), onnx_stream.finish()])
    assert np.abs(streamed - extract(model, wav).numpy()).max() < TOLERANCE


@pytest.mark.child_process
@pytest.mark.parametrize("ar", ["gru", "lstm", "gru, window"])
def test_exported_models_stream_as_torch_does(tmp_path, ar):
    model = cpc.load(SHIPPED)
    if ar == "gru, window":  # checkpoints saved before input_norm: the utterance's stats are an input of the graph
        model.config.input_norm = "window"
        wav = speech_like(16000 + 1234, seed=2)
        export_onnx(model, tmp_path / "w.onnx", 1600)
        streamed = OnnxFeatureStream(tmp_path / "w.onnx", utterance_stats(wav))
        frames = np.concatenate([streamed.push(wav[:5000]), streamed.push(wav[5000:]), streamed.finish()])
        assert np.abs(frames - extract(model, wav).numpy()).max() < TOLERANCE
        return
    if ar == "lstm":
        config = cpc_base_config()
        model = CPCModel(dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, channels=32),
                                             ar=AutoregressiveConfig("lstm", 48, layers=2))).eval()
    export_onnx(model, tmp_path / "m.onnx", 1600, layer="both")
    assert_streams_agree(model, tmp_path / "m.onnx", speech_like(1600 * 5 + 480, seed=1), 1600, "both")


@pytest.mark.child_process
def test_short_audio_and_exact_multiples_give_every_frame(tmp_path):
    model = cpc.load(SHIPPED)
    export_onnx(model, tmp_path / "m.onnx", 1600)
    for samples in (170, 1600, 3200):
        wav = speech_like(samples)
        stream = OnnxFeatureStream(tmp_path / "m.onnx", utterance_stats(wav))
        frames = np.concatenate([stream.push(wav), stream.finish()])
        assert np.abs(frames - extract(model, wav).numpy()).max() < TOLERANCE


@pytest.mark.child_process
def test_export_refusals_are_one_line(tmp_path, capsys):
    for chunk, message in (("0.123", "chunks of 1968 samples (--chunk-seconds 0.123): use a multiple of the hop "
                                     "(160 samples), at least 480 samples (0.03 s)"),):
        with pytest.raises(SystemExit) as exited:
            main(["export", SHIPPED, str(tmp_path / "x.onnx"), "--chunk-seconds", chunk])
        assert exited.value.code == 2 and capsys.readouterr().err == f"cpc export: {message}\n"
    transformer = CPCModel(dataclasses.replace(cpc_base_config(), ar=AutoregressiveConfig("transformer", 64)))
    with pytest.raises(ValueError, match="supports GRU and LSTM context models; this one is a 'transformer'"):
        export_onnx(transformer, tmp_path / "t.onnx", 1600)
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "t.onnx").exists()


def test_a_missing_extra_names_itself():
    with pytest.raises(MissingExtra) as raised:
        require("no_such_module_here", "export", "cpc export")
    assert str(raised.value) == ("cpc export needs no_such_module_here: pip install 'cpc[export]' (or pip install "
                                 "no_such_module_here)")


def test_onnx_runtime_in_a_child_process(in_child_process):
    """onnxruntime starts a thread when imported, which would outlive the tests in this process (see
    in_child_process): the tests marked child_process run in a child pytest process."""
    pytest.importorskip("onnxruntime")
    in_child_process(__file__, "stream or refusals or short_audio")
