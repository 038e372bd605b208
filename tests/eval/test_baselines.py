import pytest
import torch
import torchaudio

from cpc.eval.baselines import baseline_frames
from cpc.models.encoders import LogMelFrames


def test_baselines_on_the_frame_grid():
    wav = torch.randn(1, 16000)
    assert baseline_frames("mfcc", 16000, 160)(wav).shape == (1, 100, 39)
    assert baseline_frames("logmel", 16000, 160)(wav).shape == (1, 100, 80)
    assert baseline_frames("logmel", 8000, 80)(wav[:, :8000]).shape == (1, 100, 80)
    with pytest.raises(ValueError, match="unknown baseline features 'fbank'"):
        baseline_frames("fbank", 16000, 160)


def test_mfcc_equals_the_textbook_formula():
    """13 DCT-II (orthonormal) coefficients of 40 log-mel bands, then deltas and delta-deltas (window 5)."""
    wav = torch.randn(2, 8000)
    cepstra = LogMelFrames(16000, 160, n_mels=40)(wav) @ torchaudio.functional.create_dct(13, 40, norm="ortho")
    delta = torchaudio.functional.compute_deltas(cepstra.transpose(1, 2))
    delta2 = torchaudio.functional.compute_deltas(delta)
    expected = torch.cat([cepstra, delta.transpose(1, 2), delta2.transpose(1, 2)], dim=2)
    assert torch.allclose(baseline_frames("mfcc", 16000, 160)(wav), expected, atol=1e-4)


def test_spectral_frames_stay_float32_and_finite_under_fp16_autocast():
    wav = torch.randn(1, 16000) * 0.9  # mel power reaches ~1e5 here: fp16 overflows at 65,504
    with torch.autocast("cpu", dtype=torch.float16):
        frames = baseline_frames("logmel", 16000, 160)(wav.half())
    assert frames.dtype == torch.float32 and torch.isfinite(frames).all()
