"""The image-baseline losses against slow references written here, and across two gloo processes against one
process holding the whole batch (negatives and cross-correlations gathered with gradients)."""

import math
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from cpc.losses import barlow_twins_loss, byol_loss, moco_infonce, nt_xent


def slow_nt_xent(z1, z2, t):
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n, b = len(z), len(z1)
    total = 0.0
    for i in range(n):
        positive = (i + b) % n
        scores = [math.exp(float(z[i] @ z[j]) / t) for j in range(n) if j != i]
        total += -(float(z[i] @ z[positive]) / t - math.log(sum(scores)))
    return total / n


def slow_barlow(z1, z2, lambd, scale):
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + 1e-5)
    b = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + 1e-5)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = float(sum(a[k, i] * b[k, j] for k in range(n)) / n)
            loss += (1 - c) ** 2 if i == j else lambd * c**2
    return scale * loss


def test_nt_xent_equals_the_reference_and_finds_the_other_view():
    z1, z2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    loss, _ = nt_xent(z1, z2, 0.3)
    assert loss.item() == pytest.approx(slow_nt_xent(z1, z2, 0.3), rel=1e-5)
    loss, accuracy = nt_xent(z1, z1 + 0.01 * torch.randn_like(z1), 0.1)
    assert accuracy == 1.0 and loss < 0.1


def test_nt_xent_is_finite_in_half_precision_with_tiny_vectors():
    z = torch.full((4, 8), 1e-6, dtype=torch.float16)  # F.normalize's 1e-12 eps underflows in fp16
    loss, _ = nt_xent(z, z.clone(), 0.2)
    assert torch.isfinite(loss)


def test_moco_infonce_equals_the_reference():
    q, k, queue = torch.randn(3, 4), torch.randn(3, 4), F.normalize(torch.randn(6, 4), dim=1)
    loss, _ = moco_infonce(q, k, queue, 0.2)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    expected = 0.0
    for i in range(3):
        scores = [float(qn[i] @ kn[i]) / 0.2] + [float(qn[i] @ queue[j]) / 0.2 for j in range(6)]
        expected += -(scores[0] - math.log(sum(math.exp(s) for s in scores)))
    assert loss.item() == pytest.approx(expected / 3, rel=1e-5)


def test_byol_loss_is_two_minus_two_cosine_and_only_the_online_side_gets_gradient():
    p, z = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    loss = byol_loss(p, z)
    expected = sum(2 - 2 * float(F.cosine_similarity(p[i].detach(), z[i].detach(), dim=0)) for i in range(4)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert p.grad is not None and z.grad is None


def test_barlow_twins_equals_the_reference():
    z1, z2 = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    loss, _ = barlow_twins_loss(z1, z2, lambd=0.0051, scale=0.1)
    assert loss.item() == pytest.approx(slow_barlow(z1.float(), z2.float(), 0.0051, 0.1), rel=1e-4)


LOSSES = {
    "nt_xent": lambda z1, z2: nt_xent(z1, z2, 0.2)[0],
    "barlow": lambda z1, z2: barlow_twins_loss(z1, z2, 0.0051, 1.0)[0],
}


def loss_and_grad(name, x1, x2):
    """A shared linear layer, the loss, and the layer's gradient."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 6)
    loss = LOSSES[name](layer(x1), layer(x2))
    loss.backward()
    return loss.detach(), layer.weight.grad.clone()


def gather_worker(rank, world, port, name, results):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    x1, x2 = torch.randn(8, 8, generator=torch.Generator().manual_seed(1)).chunk(2)
    rows = slice(rank * 2, rank * 2 + 2)  # each rank holds half of the batch
    loss, grad = loss_and_grad(name, x1[rows], x2[rows])
    dist.all_reduce(grad)  # what DDP does: the mean of the ranks' gradients
    dist.all_reduce(loss)
    if rank == 0:
        results[name] = (loss / world, grad / world)
    dist.destroy_process_group()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_two_processes_give_the_loss_and_gradients_of_one_process_with_the_whole_batch(name):
    x1, x2 = torch.randn(8, 8, generator=torch.Generator().manual_seed(1)).chunk(2)
    loss, grad = loss_and_grad(name, x1, x2)
    results = mp.Manager().dict()
    port = 29600 + os.getpid() % 1000 + (name == "barlow")
    mp.spawn(gather_worker, args=(2, port, name, results), nprocs=2, join=True)
    ddp_loss, ddp_grad = results[name]
    assert ddp_loss.item() == pytest.approx(loss.item(), rel=1e-5)
    assert torch.allclose(ddp_grad, grad, atol=1e-6), (ddp_grad - grad).abs().max()
