"""ONNX export of the streaming feature extractor: one graph that takes a fixed-size chunk of audio with the
stream's state and returns the frames the chunk completes with the new state, as `FeatureStream.push` does in torch;
and `OnnxFeatureStream`, the onnxruntime reference loop that feeds it (any chunk sizes in, the last partial chunk
and the final frames handled as `FeatureStream.finish` does).

The graph (static shapes; N = chunk samples, a multiple of the hop; F = N / hop):
  inputs   audio (1, N) float32 raw samples; valid (1,) int64 real samples in `audio` (N, or fewer in the last
           chunk, whose rest is ignored); context (1, L) float32 the normalised samples the encoder still needs
           from before (zeros at the start); position (1,) int64 samples pushed before (0 at the start);
           "causal" models: norm_sum (1,) float64 the running sum of squares; "window" models: stats (2,) float32
           the utterance's (mean, std) (`utterance_stats`); g_ar state h (layers, 1, dim) (and c for an LSTM).
  outputs  features (1, F, dim) and next_context, next_position, next_norm_sum, next_h (next_c) to feed back.
Frame t needs samples up to hop t + hop + pad_right, so the output lags the input by `lag` frames: every call
returns F frames, the first call's first `lag` of them precede the audio (drop them), and after the last chunk
one call with valid = 0 returns the frames still pending. Keep the first samples // hop frames in all.
The first call runs g_ar from the zero state on its real frames only (position 0 selects it inside the graph).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cpc.errors import require
from cpc.eval.features import ExtractError, min_chunk_samples
from cpc.models.cpc import OFFLINE_LAYERS, CPCModel, check_layer, select_layer

STATE_TYPES = {"position": np.int64, "norm_sum": np.float64}  # the other inputs are float32
OPSET = 17  # LayerNorm (the channel norm) is one ONNX op from opset 17


def stream_lag(model: CPCModel) -> int:
    """Frames by which a stream's output trails its input: the encoder's look-ahead past a frame, in whole hops."""
    return -(-model.encoder.pad_right // model.hop)


def first_state(shapes: dict[str, tuple[int, ...]], stats: tuple[float, float] = (0.0, 1.0)) -> dict[str, np.ndarray]:
    """The state inputs of a stream's first call (name -> shape given): zeros, and `stats`, a "window" model's
    utterance (mean, std)."""
    return {name: np.array(stats, np.float32) if name == "stats" else np.zeros(shape, STATE_TYPES.get(name, np.float32))
            for name, shape in shapes.items()}


class StreamingStep(nn.Module):
    """One chunk of a stream as a pure function of (chunk, state) -> (frames, state): what the ONNX graph holds."""

    def __init__(self, model: CPCModel, chunk_samples: int, layer: str = "c"):
        super().__init__()
        check_exportable(model, chunk_samples, layer)
        self.model, self.layer, self.chunk = model.eval(), layer, chunk_samples
        self.norm = model.config.resolved_input_norm
        self.lag = stream_lag(model)
        self.context = model.encoder.pad_left + self.lag * model.hop  # samples kept before the next chunk
        self.lstm = model.config.ar.kind == "lstm"

    def input_names(self) -> list[str]:
        norm = {"causal": ["norm_sum"], "window": ["stats"], "none": []}[self.norm]
        return ["audio", "valid", "context", "position", *norm, "h", *(["c"] if self.lstm else [])]

    def output_names(self) -> list[str]:
        return ["features"] + ["next_" + name for name in self.input_names()[2:] if name != "stats"]

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The state inputs, in order, with their shapes."""
        rnn = self.model.ar.rnn
        shapes = {"context": (1, self.context), "position": (1,), "norm_sum": (1,), "stats": (2,),
                  "h": (rnn.num_layers, 1, rnn.hidden_size), "c": (rnn.num_layers, 1, rnn.hidden_size)}
        return {name: shapes[name] for name in self.input_names()[2:]}

    def forward(self, audio, valid, context, position, *rest):
        norm, rest = (rest[:1], rest[1:]) if self.norm != "none" else ((), rest)
        state = tuple(rest) if self.lstm else rest[0]
        real = (torch.arange(self.chunk, device=audio.device) < valid).to(audio.dtype)[None]
        raw = audio * real
        outputs = []
        if self.norm == "causal":
            normed, (norm_sum, _) = self.model.inputs.causal_norm(raw, (norm[0], position))
            outputs.append(norm_sum)
        elif self.norm == "window":
            normed = (raw - norm[0][0]) / (norm[0][1] + 1e-5)
        else:
            normed = raw
        buffer = torch.cat([context, normed * real], dim=1)
        encoder, frames = self.model.encoder, self.chunk // self.model.hop
        z = encoder.encode_padded(buffer[:, : (frames - 1) * self.model.hop + encoder.field])
        c, state = self.context_frames(z, state, position)
        features = select_layer(z, c, self.layer)
        new_state = list(state) if self.lstm else [state]
        return (features, buffer[:, -self.context :], position + valid, *outputs, *new_state)

    def context_frames(self, z, state, position):
        """g_ar over the chunk's frames; on the first call (position 0) the `lag` frames before the audio are run
        but their state is dropped, so the real frames start from the zero state."""
        if self.lag == 0:
            return self.model.ar(z, state)
        early, state_after = self.model.ar(z[:, : self.lag], state)
        first = position.reshape(1, 1, 1) == 0
        pick = lambda start, after: torch.where(first, start, after)
        start = tuple(map(pick, state, state_after)) if self.lstm else pick(state, state_after)
        late, state = self.model.ar(z[:, self.lag :], start)
        return torch.cat([early, late], dim=1), state


def check_exportable(model: CPCModel, chunk_samples: int, layer: str) -> None:
    """ExtractError unless this model and chunk size make a static streaming graph."""
    check_layer(layer)
    if model.inputs.kind != "waveform":
        raise ExtractError(f"cpc export streams raw-waveform audio models; this model reads {model.inputs.kind} input")
    if layer in OFFLINE_LAYERS or layer == "appearance":
        raise ExtractError(f"feature layer {layer!r} cannot be streamed (--layer): export c, z or both")
    if model.config.ar.kind not in ("gru", "lstm"):
        raise ExtractError(f"cpc export supports GRU and LSTM context models; this one is a {model.config.ar.kind!r} "
                           "(its attention cache grows with the stream): extract with `cpc extract --chunk-seconds`")
    if model.config.encoder.norm == "instance":
        raise ExtractError("instance norm uses whole-sequence statistics: a model with it cannot be streamed")
    least = min_chunk_samples(model)
    if chunk_samples % model.hop or chunk_samples < least:
        rate = model.config.sample_rate
        raise ExtractError(f"chunks of {chunk_samples} samples (--chunk-seconds {chunk_samples / rate:g}): use a "
                           f"multiple of the hop ({model.hop} samples), at least {least} samples "
                           f"({least / rate:g} s)")


def export_onnx(model: CPCModel, path: str | Path, chunk_samples: int, layer: str = "c") -> StreamingStep:
    """Writes the streaming extractor of `model` as an ONNX graph with its facts (hop, lag, chunk, sample rate,
    layer, input norm) in the model's metadata; returns the exported step."""
    onnx = require("onnx", "export", "cpc export")
    step = StreamingStep(copy.deepcopy(model).float().cpu(), chunk_samples, layer)  # the caller's model untouched
    example = {"audio": np.zeros((1, chunk_samples), np.float32), "valid": np.array([chunk_samples]),
               **first_state(step.state_shapes())}
    args = tuple(torch.from_numpy(example[name]) for name in step.input_names())
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(step, args, str(path), input_names=step.input_names(), output_names=step.output_names(),
                          opset_version=OPSET, dynamo=False)
    graph = onnx.load(str(path))
    facts = {"hop": model.hop, "lag": step.lag, "chunk_samples": chunk_samples, "layer": layer,
             "sample_rate": model.config.sample_rate, "input_norm": step.norm, "dim": model.layer_dim(layer)}
    for key, value in facts.items():
        graph.metadata_props.add(key=key, value=str(value))
    onnx.save(graph, str(path))
    return step


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session of an exported extractor, on `threads` threads."""
    onnxruntime = require("onnxruntime", "export", "running an exported extractor")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxFeatureStream:
    """An exported extractor run by onnxruntime with FeatureStream's interface: `push` audio of any length, get the
    frames completed; `finish` returns the rest (samples // hop frames in all). `stats`: "window" models only.
    `source`: the .onnx file, or a session from `onnx_session` to share between streams."""

    def __init__(self, source, stats: tuple[float, float] = (0.0, 1.0)):
        self.session = source if hasattr(source, "run") else onnx_session(source)
        facts = self.session.get_modelmeta().custom_metadata_map
        self.hop, self.lag, self.chunk = int(facts["hop"]), int(facts["lag"]), int(facts["chunk_samples"])
        self.dim = int(facts["dim"])
        self.state = first_state({node.name: node.shape for node in self.session.get_inputs()[2:]}, stats)
        self.pending = np.zeros(0, np.float32)
        self.samples = self.emitted = self.calls = 0

    def run(self, audio: np.ndarray, valid: int) -> np.ndarray:
        """One graph call on a full-size chunk holding `valid` real samples; returns its real frames."""
        outputs = self.session.run(None, {"audio": audio[None], "valid": np.array([valid]), **self.state})
        carried = [name for name in self.state if name != "stats"]  # the outputs' order
        self.state.update(zip(carried, outputs[1:]))
        frames = outputs[0][0, self.lag:] if self.calls == 0 else outputs[0][0]
        self.calls += 1
        return frames

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Frames completed by this audio (frames, dim), possibly none."""
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        self.samples += len(chunk)
        self.pending = np.concatenate([self.pending, chunk])
        out = []
        while len(self.pending) >= self.chunk:
            out.append(self.run(self.pending[: self.chunk], self.chunk))
            self.pending = self.pending[self.chunk :]
        return self.emit(out)

    def finish(self) -> np.ndarray:
        """The remaining frames: the last partial chunk zero-padded (valid = its length), then zero chunks
        (valid = 0) until every frame of the audio is out."""
        out = []
        padded = np.zeros(self.chunk, np.float32)
        padded[: len(self.pending)] = self.pending
        valid, self.pending = len(self.pending), self.pending[:0]
        while self.emitted + sum(map(len, out)) < self.samples // self.hop:
            out.append(self.run(padded, valid))
            padded, valid = np.zeros(self.chunk, np.float32), 0
        return self.emit(out)

    def emit(self, pieces: list[np.ndarray]) -> np.ndarray:
        frames = np.concatenate(pieces) if pieces else np.zeros((0, self.dim), np.float32)
        frames = frames[: max(0, self.samples // self.hop - self.emitted)]  # padding's frames past the end: none
        self.emitted += len(frames)
        return frames
