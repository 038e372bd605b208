"""Trainer overhead: marginal time per step of Trainer.fit vs a bare loop (forward, backward, Adam, zero_grad)
running the same method on the same in-memory batches, 2 threads, CPU fp32.

    python tools/bench_trainer.py                  # the small CPC preset, batch 8 x 20480
    python tools/bench_trainer.py --preset base
    python tools/bench_trainer.py --profile        # the trainer's own code per step, from cProfile

Both loops pull one batch per step from the same iterator, which timestamps every pull: the interval between
pulls is the full cost of a step (the trainer's logging every 10 steps, its finite-loss check and throughput
count included), free of start-up, the final checkpoint and the curves PNG. Each loop runs several times,
alternating; the figure is the mean interval with the slowest and fastest 10 % of steps dropped, best round.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

import torch

from cpc.methods import CPCMethod, cpc_preset
from cpc.train.optim import OptimConfig, build_optimiser
from cpc.train.trainer import TrainConfig, Trainer


class TimedBatches:
    """Cycles through a few fixed batches and records the time of every pull."""

    def __init__(self, batch: int, samples: int):
        g = torch.Generator().manual_seed(0)
        self.fixed = [{"wav": torch.randn(batch, samples, generator=g)} for _ in range(4)]
        self.times: list[float] = []

    def __call__(self, start: int, segment: int = 0):
        for batch in itertools.cycle(self.fixed):
            self.times.append(time.perf_counter())
            yield dict(batch)

    def step_seconds(self, skip: int = 5) -> float:
        intervals = sorted(b - a for a, b in zip(self.times[skip:], self.times[skip + 1 :]))
        cut = len(intervals) // 10
        kept = intervals[cut : len(intervals) - cut]
        return sum(kept) / len(kept)


def bare(preset: str, steps: int, data: TimedBatches) -> None:
    torch.manual_seed(0)
    method = CPCMethod(cpc_preset(preset))
    optimiser = build_optimiser(method.param_groups(), OptimConfig(lr=2e-4))  # the trainer's (fused) Adam
    stream = data(0)
    for _ in range(steps):
        loss, _ = method.training_step(next(stream))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    next(stream)  # closes the last interval


def trainer(preset: str, steps: int, data: TimedBatches) -> None:
    torch.manual_seed(0)
    method = CPCMethod(cpc_preset(preset))
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(steps=steps + 1, out=out, checkpoint_every=10**9, log_every=10, progress=False)
        Trainer(method, data, OptimConfig(lr=2e-4), config).fit()


# The loop's own functions in cpc/train (and the lr schedule's); the method's forward and the optimiser are not.
TRAINER_CODE = {"fit_steps", "forward_backward", "to_device", "count", "stepped", "add", "of", "__bool__", "rate",
                "rate_name", "gather_train_logs", "log_train", "logged", "log", "get_last_lr", "lr_factor",
                "<lambda>", "step"}


def profiled_own_seconds(preset: str, steps: int, data_args) -> float:
    """Self time of the trainer's per-step code (its loop body, helpers, lr schedule) per marginal step."""
    import cProfile
    import pstats

    trainer(preset, 3, TimedBatches(*data_args))  # one-off imports and set-up outside the measurement
    totals = []
    for n in (steps, 2 * steps):
        profile = cProfile.Profile()
        profile.enable()
        trainer(preset, n, TimedBatches(*data_args))
        profile.disable()
        stats = pstats.Stats(profile).stats
        totals.append(sum(v[2] for (f, _, name), v in stats.items()
                          if name in TRAINER_CODE and ("cpc/train" in f or "lr_scheduler" in f)))
    return (totals[1] - totals[0]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="report the trainer's own code time per step")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=20480)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.profile:
        own = profiled_own_seconds(args.preset, args.steps, (args.batch, args.samples))
        print(f"trainer's own code: {1000 * own:.2f} ms per step under cProfile (which inflates Python time)")
    best = {"bare loop": float("inf"), "trainer": float("inf")}
    for _ in range(args.rounds):
        for name, run in (("bare loop", bare), ("trainer", trainer)):
            data = TimedBatches(args.batch, args.samples)
            run(args.preset, args.steps, data)
            best[name] = min(best[name], data.step_seconds())
    for name, seconds in best.items():
        print(f"{name:<10} {1000 * seconds:7.1f} ms/step")
    overhead = best["trainer"] / best["bare loop"] - 1
    print(f"trainer overhead: {100 * overhead:+.1f} % per step ({args.preset}, batch {args.batch} x {args.samples}, "
          f"{args.steps} steps x {args.rounds} rounds)")


if __name__ == "__main__":
    main()
