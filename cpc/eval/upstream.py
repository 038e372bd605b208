"""An s3prl-style upstream around a cpc checkpoint, so s3prl's downstream tasks (SUPERB phone recognition, speaker
identification, ...) can use it: `forward(wavs)` takes a list of 1-D waveforms and returns the encoder frames z
and the context c of the zero-padded batch, `get_downsample_rates(key)` the samples per frame.

    upstream = cpc.eval.upstream.upstream("runs/cpc")        # or cpc.eval.upstream.Upstream(model)
    out = upstream([wav1, wav2])          # {"hidden_states": [z, c], "last_hidden_state": c, "z": z, "c": c}

Each waveform is normalised as the model was trained (`input_norm`; "window": standardised over its own samples
before padding, as `cpc extract` does; "causal": a running RMS that padding after the end cannot reach) and
zero-padded to the longest:
row i's first `len(wav_i) // hop` frames equal those of wav_i run alone (every part of the model is causal or
frame-local), the rest are padding frames a downstream task masks by length. In train mode (s3prl's
`--upstream_trainable`) gradients reach every encoder and context weight; BatchNorm then uses batch statistics.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from cpc.errors import UserError
from cpc.models.cpc import CPCModel

KEYS = ("hidden_states", "last_hidden_state", "z", "c")


class Upstream(nn.Module):
    """A CPCModel as an s3prl upstream: list of (samples,) waveforms -> dict of (batch, frames, dim) tensors."""

    def __init__(self, model: CPCModel):
        super().__init__()
        if not isinstance(model, CPCModel) or model.inputs.modality != "audio":
            raise UserError(f"an s3prl upstream needs an audio CPCModel, not {type(model).__name__}"
                            + (f" ({model.inputs.modality})" if isinstance(model, CPCModel) else ""))
        if model.config.encoder.norm == "instance":
            raise UserError("an encoder with instance norm uses whole-sequence statistics: padded batches would "
                            "change its frames; use a model with channel, layer, batch or no norm")
        self.model = model
        self.sample_rate = model.config.sample_rate
        self.hidden_sizes = [model.encoder.dim, model.config.ar.dim]  # of hidden_states, z then c

    @property
    def hop(self) -> int:
        """Samples per frame."""
        return self.model.hop

    def get_downsample_rates(self, key: str) -> int:
        """Samples per output frame of feature `key` (the same for every key)."""
        if key not in KEYS:
            raise KeyError(f"no feature {key!r}; this upstream gives {', '.join(KEYS)}")
        return self.model.hop

    def forward(self, wavs: Sequence[torch.Tensor]) -> dict:
        """wavs: list of (samples,) float waveforms at `sample_rate` -> {"hidden_states": [z, c],
        "last_hidden_state": c, "z": z, "c": c}, each (batch, max samples // hop, dim)."""
        if not len(wavs):
            raise ValueError("forward needs at least one waveform")
        device = next(self.model.parameters()).device
        lengths = [int(w.shape[-1]) for w in wavs]
        if min(lengths) < self.hop or any(w.dim() != 1 for w in wavs):
            raise ValueError(f"each waveform must be 1-D with at least {self.hop} samples; got shapes "
                             f"{[tuple(w.shape) for w in wavs]}")
        rows = []
        window = self.model.config.resolved_input_norm == "window"
        for wav in wavs:
            wav = wav.to(device, torch.float32)
            if window:  # the utterance's own statistics, not its padding's
                wav = (wav - wav.mean()) / (wav.std(unbiased=False) + 1e-5)
            rows.append(wav)
        batch = nn.utils.rnn.pad_sequence(rows, batch_first=True)  # zeros after each end, as whole-utterance padding
        if not window:  # "causal" sees only earlier samples, so the padding changes nothing before it; or "none"
            batch = self.model.prepare(batch)
        z = self.model.encoder(batch)
        c, _ = self.model.ar(z)
        return {"hidden_states": [z, c], "last_hidden_state": c, "z": z, "c": c}


def upstream(path: str | os.PathLike, device: str | torch.device = "cpu") -> Upstream:
    """The s3prl-style upstream of a checkpoint file or run folder (its newest checkpoint), in eval mode."""
    from cpc.checkpoint import load

    return Upstream(load(path, device=device)).eval()
