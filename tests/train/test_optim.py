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


def lars_reference(weight, grad, buffer, lr, momentum, weight_decay, eta):
    """The per-parameter loop of You et al. 2017 with host-side conditions."""
    update = grad + weight_decay * weight
    if weight.norm() > 0 and update.norm() > 0:
        update = update * (eta * weight.norm() / update.norm())
    buffer = momentum * buffer + update
    return weight - lr * buffer, buffer


def test_lars_with_momentum_follows_the_reference_loop_over_steps():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(5, 3))
    optimiser = LARS([{"params": [weight], "weight_decay": 1e-3}], lr=0.5, momentum=0.9, eta=0.02)
    expected, buffer = weight.detach().clone(), torch.zeros(5, 3)
    for _ in range(3):
        grad = torch.randn(5, 3)
        weight.grad = grad.clone()
        optimiser.step()
        expected, buffer = lars_reference(expected, grad, buffer, 0.5, 0.9, 1e-3, 0.02)
    assert torch.allclose(weight.detach(), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lars"])
def test_a_found_inf_flag_skips_the_step_on_the_device(name):
    """The trainer skips steps with non-finite gradients without reading the flag on the host: the optimiser
    itself must leave weights and state untouched when found_inf is 1, and step normally when it is 0."""
    weight = torch.nn.Parameter(torch.ones(4))
    optimiser = build_optimiser([{"params": [weight], "weight_decay": 0.1}], OptimConfig(name=name, lr=0.1))
    weight.grad = torch.full((4,), float("nan"))
    optimiser.grad_scale, optimiser.found_inf = None, torch.ones(())
    optimiser.step()
    assert torch.equal(weight.detach(), torch.ones(4))
    weight.grad = torch.ones(4)
    optimiser.found_inf = torch.zeros(())
    optimiser.step()
    assert torch.isfinite(weight).all() and not torch.equal(weight.detach(), torch.ones(4))
    state = optimiser.state[weight]
    assert all(torch.isfinite(v).all() for v in state.values() if isinstance(v, torch.Tensor))
    if name in ("adam", "adamw"):
        assert float(state["step"]) == 1  # the skipped step did not count
    if name == "sgd":  # the real step is the first one: buffer = gradient + decay = 1.1, so 1 - 0.1 x 1.1
        assert torch.allclose(weight.detach(), torch.full((4,), 0.89))


def test_fused_adam_equals_the_plain_loop():
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(6)), None
    b = torch.nn.Parameter(a.detach().clone())
    fused = build_optimiser([{"params": [a]}], OptimConfig(lr=1e-2))
    plain = torch.optim.Adam([b], lr=1e-2, foreach=False)
    for _ in range(3):
        grad = torch.randn(6)
        a.grad, b.grad = grad.clone(), grad.clone()
        fused.step()
        plain.step()
    assert torch.allclose(a, b, atol=1e-6)
