"""CPCModel over video frames: the audio g_ar and heads, unchanged, on FrameEncoder frames."""

import pytest
import torch

from cpc.models.autoregressive import AutoregressiveConfig
from cpc.models.cpc import CPCModel, cpc_video_config
from cpc.models.heads import PredictorConfig


def video_model(ar="gru", grid=1, regression="none"):
    config = cpc_video_config()
    config.ar = AutoregressiveConfig(kind=ar, dim=32)
    config.predictor = PredictorConfig(kind="linear", steps=3)
    config.frames.grid = grid
    config.regression_target = regression
    return CPCModel(config)


def clips(batch=2, time=8):
    return torch.randint(0, 256, (batch, time, 32, 32, 1), dtype=torch.uint8)


@pytest.mark.parametrize("grid", [1, 2])
def test_shapes_with_grid_cells_as_sequences(grid):
    model = video_model(grid=grid)
    out = model(clips())
    cells = grid * grid
    assert out["z"].shape == (2 * cells, 8, 256) and out["c"].shape == (2 * cells, 8, 32)
    assert out["pred"].shape == (2 * cells, 8, 3, 256)
    assert model.features(clips()[0]).shape == (8, 32)  # one clip; cells averaged
    assert model.features(clips(), layer="both").shape == (2, 8, 288)


@pytest.mark.parametrize("ar", ["gru", "lstm", "transformer"])
def test_no_future_leakage_over_time(ar):
    model = video_model(ar=ar, grid=2).eval()
    x = clips()
    changed = x.clone()
    changed[:, 5:] = torch.randint(0, 256, changed[:, 5:].shape, dtype=torch.uint8)
    with torch.no_grad():
        a, b = model(x), model(changed)
    for name in ("z", "c", "pred"):
        assert torch.equal(a[name][:, :5], b[name][:, :5]), name
    assert not torch.allclose(a["c"][:, 5:], b["c"][:, 5:])


def test_regression_of_future_frames():
    out = video_model(regression="z")(clips())
    assert out["regression"].shape == (2, 8, 3, 256) and not out["regression_target"].requires_grad


@pytest.mark.parametrize("grid", [1, 2])
def test_pixel_regression_target_is_each_cells_pooled_frame(grid):
    model = video_model(grid=grid, regression="pixels")
    x = clips()
    out = model(x)
    frames = model.prepare(x)  # standardised (B, T, H, W, C)
    size = model.config.pixel_size // grid  # pixels per cell side
    cell = 32 // grid
    for b, t, row, col in [(0, 0, 0, 0), (1, 5, grid - 1, 0), (1, 7, 0, grid - 1)]:
        region = frames[b, t, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell, 0]
        expected = torch.nn.functional.adaptive_avg_pool2d(region[None], size).flatten()
        torch.testing.assert_close(out["regression_target"][b * grid * grid + row * grid + col, t], expected)
    assert out["regression"].shape == (2 * grid * grid, 8, 3, size * size)


def test_bad_inputs():
    model = video_model()
    with pytest.raises(ValueError, match=r"\(batch, time, height, width, channels\); got shape \(8, 32, 32, 1\)"):
        model(clips()[0])
    with pytest.raises(ValueError, match="frames have 3 channels but the frame encoder takes 1"):
        model(torch.zeros(1, 8, 32, 32, 3, dtype=torch.uint8))
    config = cpc_video_config()
    config.regression_target = "logmel"
    with pytest.raises(ValueError, match="'logmel' needs audio"):
        CPCModel(config)
    config.modality, config.regression_target = "audio", "pixels"
    with pytest.raises(ValueError, match="'pixels' needs video"):
        CPCModel(config)
    config.modality = "text"
    with pytest.raises(ValueError, match="unknown modality 'text'"):
        CPCModel(config)
