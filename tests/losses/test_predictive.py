import pytest
import torch

from cpc.losses.predictive import predictive_coding_loss


@pytest.mark.parametrize("kind", ["mse", "l1"])
def test_matches_reference(kind):
    pred = torch.randn(2, 10, 3, 4)
    target = torch.randn(2, 10, 4)
    loss, per_step = predictive_coding_loss(pred, target, kind)
    for k in range(1, 4):
        diff = pred[:, :7, k - 1] - target[:, k : k + 7]
        expected = diff.pow(2).mean() if kind == "mse" else diff.abs().mean()
        assert torch.allclose(per_step[k - 1], expected, atol=1e-6)
    assert torch.allclose(loss, per_step.mean())


def test_exact_future_gives_zero():
    target = torch.randn(1, 12, 3)
    pred = torch.stack([torch.roll(target, -k, dims=1) for k in (1, 2)], dim=2)
    assert predictive_coding_loss(pred, target)[0] == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown regression loss 'huber'"):
        predictive_coding_loss(torch.randn(1, 5, 2, 3), torch.randn(1, 5, 3), "huber")
    with pytest.raises(ValueError, match="K = 4 prediction steps need more than 4 frames"):
        predictive_coding_loss(torch.randn(1, 4, 4, 3), torch.randn(1, 4, 3))
