"""Feature specifications -> callables: a name a user types (`--features`) becomes a function inputs -> (frames,
dim), the same for a trained model, its int8 or random-init form, and the spectral baselines.

    mfcc | logmel                   spectral baselines on 10 ms frames
    RUN_OR_CHECKPOINT               a trained model (its newest checkpoint for a run folder)
    random:PRESET | random:CKPT     that architecture freshly initialised (seed 0): the random-init baseline
    int8:CKPT                       its encoder in int8, scales calibrated on given waveforms
    A+B (e.g. runs/x+mfcc)          the features of A and B concatenated frame by frame on their common grid
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

import torch

from cpc import checkpoint
from cpc.config import to_dict
from cpc.data.labels import frame_samples
from cpc.devices import pick_device
from cpc.eval.baselines import BASELINES, baseline_frames
from cpc.eval.features import LONG_SECONDS, extract_chunked, streamable
from cpc.models.cpc import CPCModel, CPCModelConfig, model_preset
from cpc.models.int8 import int8_model

PREFIXES = ("random:", "int8:")


class Featurizer:
    """`features(inputs)` -> (frames, dim) float features of one utterance (samples,) or clip (T, H, W, C)."""

    def __init__(self, compute: Callable[[torch.Tensor], torch.Tensor], sample_rate: int | None,
                 hop: int | None = None):
        self.compute, self.sample_rate, self.hop = compute, sample_rate, hop  # hop: samples per frame (audio)

    @property
    def frame_seconds(self) -> float | None:
        """The frame shift in seconds (audio), what ABX calls feature_size."""
        return self.hop / self.sample_rate if self.hop and self.sample_rate else None

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.compute(inputs)


def model_of(spec: str, calibration: Sequence = ()) -> torch.nn.Module:
    """The model a non-baseline spec names."""
    kind, _, source = spec.partition(":") if spec.startswith(PREFIXES) else ("", "", spec)
    if kind == "random":
        if Path(source).exists():
            return checkpoint.load(source, weights=False)
        try:
            config = model_preset(source)
        except ValueError:
            raise ValueError(f"random:{source}: neither a checkpoint nor a preset (paper, base, small, logmel, "
                             "video)") from None
        return checkpoint.build_model({"class": "CPCModel", "config": to_dict(config)}).eval()
    if not kind and not Path(source).exists() and "/" not in source and Path(source).suffix != ".pt":  # a bare name
        raise ValueError(f"{spec}: no such checkpoint or run folder, nor a built-in feature; built-in: "
                         f"{', '.join(BASELINES)}, random:PRESET (paper, base, small, video), int8:CHECKPOINT, A+B")
    model = checkpoint.load(source)
    if kind == "int8":
        return int8_model(model, list(calibration))
    return model


def parts(spec: str) -> list[str]:
    """The specs a `A+B` spec concatenates ([spec] itself when it names no concatenation, or is an existing path)."""
    if "+" not in spec or Path(spec).exists():
        return [spec]
    named = spec.split("+")
    if not all(named):
        raise ValueError(f"{spec}: an empty part in a concatenation; write it as A+B, e.g. runs/x+mfcc")
    return named


def featurizer(spec: str, layer: str = "c", calibration: Sequence = (), sample_rate: int | None = None,
               device: str | torch.device = "auto") -> Featurizer:
    """A Featurizer for `spec` (see the module docstring). Baselines compute at `sample_rate` (default: the model
    config's default); a model refuses a `sample_rate` other than its own and runs on `device` (auto: CUDA when
    present; int8 models stay on the CPU), returning CPU tensors. `calibration`: waveforms for int8."""
    named = parts(spec)
    if len(named) > 1:
        return concatenated(spec, [featurizer(part, layer, calibration, sample_rate, device) for part in named])
    if spec in BASELINES:
        rate = sample_rate or CPCModelConfig.sample_rate
        frames = baseline_frames(spec, rate, frame_samples(rate))
        return Featurizer(lambda wav: frames(torch.as_tensor(wav, dtype=torch.float32)[None])[0], rate,
                          frame_samples(rate))
    model = model_of(spec, calibration)
    if not spec.startswith("int8:"):  # int8 kernels are CPU kernels
        model = model.to(pick_device(device))
    rate = model.inputs.sample_rate if isinstance(model, CPCModel) else None
    if sample_rate is not None and rate is not None and rate != sample_rate:
        raise ValueError(f"{spec}: the model takes {rate} Hz audio; the data is {sample_rate} Hz")
    if rate is None:  # video
        return Featurizer(lambda inputs: model.features(inputs, layer).cpu(), rate)
    return Featurizer(lambda wav: bounded_features(model, wav, layer), rate, model.hop)


def bounded_features(model: CPCModel, wav: torch.Tensor, layer: str,
                     chunk_seconds: float = LONG_SECONDS) -> torch.Tensor:
    """An audio model's (frames, dim) features of one waveform (samples,), on the CPU; a waveform longer than
    `chunk_seconds` is streamed in chunks that long (the same frames; activations no longer grow with it)."""
    chunk = round(chunk_seconds * model.config.sample_rate)
    if len(wav) > chunk and streamable(model, layer):
        return extract_chunked(model, wav, chunk, layer).cpu()
    return model.features(wav, layer).cpu()


def concatenated(spec: str, featurizers: list[Featurizer]) -> Featurizer:
    """One Featurizer giving the frames of each of `featurizers` side by side; they must share one frame grid (the
    same rate and hop). Frame counts may differ at the end by the last partial frame: the common frames are kept."""
    grids = {(f.sample_rate, f.hop) for f in featurizers}
    if len(grids) > 1:
        raise ValueError(f"{spec}: its parts compute on different frame grids (sample rate, hop) {sorted(grids)}; "
                         "only features on one grid can be concatenated")

    def compute(inputs: torch.Tensor) -> torch.Tensor:
        frames = [f(inputs) for f in featurizers]
        common = min(len(f) for f in frames)
        return torch.cat([f[:common] for f in frames], dim=-1)

    first = featurizers[0]
    return Featurizer(compute, first.sample_rate, first.hop)


def feature_name(spec: str) -> str:
    """A file-name-safe name for a spec: a checkpoint's file name, "random_<name>", "int8_<name>", "mfcc", ...;
    "<A>+<B>" for a concatenation."""
    named = parts(spec)
    if len(named) > 1:
        return "+".join(map(feature_name, named))
    kind, _, source = spec.partition(":") if spec.startswith(PREFIXES) else ("", "", spec)
    prefix = f"{kind}_" if kind else ""
    return re.sub(r"[^\w.-]+", "_", prefix + (Path(source).name if Path(source).exists() else source))
