"""Trainer overhead: marginal time per step of Trainer.fit vs a bare loop (forward, backward, Adam, zero_grad)
running the same method on the same in-memory batches, 2 threads, CPU fp32.

    python tools/bench_trainer.py                  # the small CPC preset, batch 8 x 20480
    python tools/bench_trainer.py --preset base

Marginal cost per step = (T(2N) - T(N)) / N, so start-up, the final checkpoint and the curves PNG cancel out.
The trainer logs every 10 steps (a host sync), as by default.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

import torch

from cpc.methods import CPCMethod, cpc_preset
from cpc.train.optim import OptimConfig
from cpc.train.trainer import TrainConfig, Trainer


def batches(batch: int, samples: int):
    g = torch.Generator().manual_seed(0)
    fixed = [{"wav": torch.randn(batch, samples, generator=g)} for _ in range(4)]
    return lambda start: itertools.cycle(fixed)


def bare(preset: str, steps: int, data) -> float:
    torch.manual_seed(0)
    method = CPCMethod(cpc_preset(preset))
    optimiser = torch.optim.Adam(method.parameters(), lr=2e-4)
    stream = data(0)
    start = time.perf_counter()
    for _ in range(steps):
        loss, _ = method.training_step(next(stream))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def trainer(preset: str, steps: int, data) -> float:
    torch.manual_seed(0)
    method = CPCMethod(cpc_preset(preset))
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(steps=steps, out=out, checkpoint_every=10**9, log_every=10, progress=False)
        start = time.perf_counter()
        Trainer(method, data, OptimConfig(lr=2e-4), config).fit()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=20480)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = batches(args.batch, args.samples)
    bare(args.preset, 5, data)  # warm up kernels and allocators once
    marginal = {}
    for name, run in (("bare loop", bare), ("trainer", trainer)):
        rounds = [(run(args.preset, args.steps, data), run(args.preset, 2 * args.steps, data)) for _ in range(2)]
        marginal[name] = min(long - short for short, long in rounds) / args.steps
        print(f"{name:<10} {1000 * marginal[name]:7.1f} ms/step (marginal, best of 2)")
    overhead = marginal["trainer"] / marginal["bare loop"] - 1
    print(f"trainer overhead: {100 * overhead:+.1f} % per step ({args.preset}, batch {args.batch} x {args.samples})")


if __name__ == "__main__":
    main()
