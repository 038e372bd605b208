import math

import pytest
import torch

from cpc.train.optim import LARS, OptimConfig, build_optimiser, lr_factor


def test_warmup_then_cosine_to_the_floor():
    config = OptimConfig(warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, 110, config) == pytest.approx(0.1) and lr_factor(9, 110, config) == pytest.approx(1.0)
    assert lr_factor(60, 110, config) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, 110, config) == pytest.approx(0.1)
    assert lr_factor(50, 110, OptimConfig(warmup_steps=10)) == 1.0


def test_lars_scales_each_update_by_the_trust_ratio():
    weight = torch.nn.Parameter(torch.full((4,), 2.0))
    bias = torch.nn.Parameter(torch.zeros(4))
    optimiser = LARS([{"params": [weight], "weight_decay": 0.1}, {"params": [bias], "weight_decay": 0.0}],
                     lr=1.0, momentum=0.0, eta=0.01)
    weight.grad, bias.grad = torch.ones(4), torch.ones(4)
    optimiser.step()
    update = torch.ones(4) + 0.1 * 2.0  # gradient plus weight decay
    expected = 2.0 - 0.01 * (4.0 / update.norm()) * update  # eta * ||w|| / ||update||
    assert torch.allclose(weight, expected) and torch.allclose(bias, -torch.ones(4))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown optimiser 'adagrad'"):
        build_optimiser([{"params": [torch.nn.Parameter(torch.zeros(1))]}], OptimConfig(name="adagrad"))
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor(0, 10, OptimConfig(schedule="step"))
