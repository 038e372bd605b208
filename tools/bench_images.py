"""Images per second for one training step (forward, backward, SGD) of each image baseline: ResNet-18 with the
small-image stem, batch 256, 32x32, 2 threads, fp32 (and bf16 autocast with --bf16); with --lightly, the lightly
library's SimCLR (its ResNet-18 trunk, projection head and NTXentLoss) at the same configuration, if installed.

    python tools/bench_images.py [--steps 3] [--batch 256] [--lightly] [--methods simclr]
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpc.methods import BYOL, BarlowTwins, BarlowTwinsConfig, BYOLConfig, MoCo, MoCoConfig, SimCLR, SimCLRConfig  # noqa
from cpc.models.encoders import ImageEncoderConfig  # noqa: E402
from timing import best_of, interleaved_best_of  # noqa: E402  (tools/timing.py)


def ours(method, views, bf16: bool):
    optimiser = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = method.training_step({"views": views})
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        method.after_optimiser_step(1)

    return step


def lightly_simclr(views, bf16: bool):
    import torchvision
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    resnet = torchvision.models.resnet18()
    resnet.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    resnet.maxpool = torch.nn.Identity()
    backbone = torch.nn.Sequential(*list(resnet.children())[:-1])
    head = SimCLRProjectionHead(512, 2048, 128)
    criterion = NTXentLoss(temperature=0.2)
    params = list(backbone.parameters()) + list(head.parameters())
    optimiser = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    x0, x1 = views[:, 0], views[:, 1]

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z0 = head(backbone(x0).flatten(1))
            z1 = head(backbone(x1).flatten(1))
            loss = criterion(z0, z1)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--lightly", action="store_true")
    parser.add_argument("--methods", nargs="*", default=["simclr", "moco", "byol", "barlow_twins"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    views = torch.randn(args.batch, 2, 3, 32, 32)
    resnet = ImageEncoderConfig(arch="resnet18", cifar_stem=True)
    builders = {
        "simclr": lambda: SimCLR(SimCLRConfig(backbone=resnet)),
        "moco": lambda: MoCo(MoCoConfig(backbone=resnet)),
        "byol": lambda: BYOL(BYOLConfig(backbone=resnet, total_steps=1000)),
        "barlow_twins": lambda: BarlowTwins(BarlowTwinsConfig(backbone=resnet)),
    }
    print(f"batch {args.batch} x 2 views, 32x32, ResNet-18 small-image stem, 2 threads, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, best of {args.steps} steps")
    for name in args.methods:
        seconds = best_of(ours(builders[name](), views, args.bf16), args.steps)
        print(f"cpc {name:<13} {args.batch / seconds:7.1f} images/s  ({seconds:.2f} s/step)", flush=True)
    if args.lightly:  # head to head, calls interleaved: the machine drifts by 10-15 % between runs
        best = interleaved_best_of({"cpc simclr": ours(builders["simclr"](), views, args.bf16),
                                    "lightly simclr": lightly_simclr(views, args.bf16)}, args.steps)
        for name, seconds in best.items():
            print(f"{name:<17} {args.batch / seconds:7.1f} images/s  ({seconds:.2f} s/step, interleaved)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
