"""The one trainer: a Method, a data stream and an optimiser config in; checkpoints, logs and curves out.

Step-based. CUDA when present (bf16 autocast, or fp16 with a grad scaler), else CPU fp32. Under torchrun, DDP
(NCCL on GPUs, gloo on CPU); only rank 0 logs and writes checkpoints. Exact resume: the data stream is restarted
at every checkpoint with randomness derived from (seed, rank, worker, step), and every rank's RNG states are
saved, so a run resumed from step n sees exactly the batches and random draws the uninterrupted run saw.
"""

from __future__ import annotations

import csv
import itertools
import time
import warnings
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist

from cpc import checkpoint
from cpc.version import __version__
from cpc.data.stages import SkipCounter
from cpc.train import distributed
from cpc.train.allocator import limit_allocator_slack
from cpc.train.optim import OptimConfig, build_optimiser, build_schedule

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    steps: int = 1000
    out: str = "runs/cpc"
    seed: int = 0
    precision: str = "auto"  # auto: bf16 (or fp16 + grad scaler) on CUDA, fp32 on CPU
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate_every: int = 0  # 0: no validation
    validation_batches: int = 50
    log_every: int = 10
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops
    compile: bool = False  # torch.compile the method's networks
    progress: bool = True
    malloc_trim_mb: float = 0.0  # >0: glibc returns freed memory above this many MB (-0.1 GB peak, -25 % speed)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """`fit()` trains `method` (a cpc.methods.Method) on batches from `train_data(start_step)` for config.steps
    optimiser steps."""

    def __init__(
        self,
        method: torch.nn.Module,
        train_data: Callable[[int], Iterable[dict[str, Any]]],
        optim: OptimConfig,
        config: TrainConfig,
        val_data: Callable[[], Iterable[dict[str, Any]]] | None = None,
        run_config: dict[str, Any] | None = None,
    ):
        self.method, self.train_data, self.val_data = method, train_data, val_data
        self.optim_config, self.config, self.run_config = optim, config, run_config or {}
        self.out = Path(config.out)
        self.skips = SkipCounter()
        self.history: list[tuple[int, str, str, float]] = []

    def fit(self, resume: bool = False) -> dict[str, float]:
        cfg, method = self.config, self.method
        device, self.rank, world = distributed.setup()
        self.device = device
        limit_allocator_slack(cfg.malloc_trim_mb)
        method.to(device)
        model = torch.nn.parallel.DistributedDataParallel(method) if world > 1 else method
        if cfg.compile:
            # The networks are compiled, the loss runs eagerly: compiling the whole CPC step (torch 2.14, whose
            # dynamo graph-breaks at the GRU) returned a loss without an autograd graph. Patching forward keeps
            # state_dict keys unchanged.
            for network in method.children():
                network.forward = torch.compile(network.forward)
        step_fn = model
        optimiser = build_optimiser(method.param_groups(self.optim_config.weight_decay), self.optim_config)
        schedule = build_schedule(optimiser, cfg.steps, self.optim_config)
        dtype = autocast_dtype(cfg.precision, device)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        torch.manual_seed(cfg.seed + self.rank)  # distinct random draws per rank (negatives, masks)
        step = 0
        if resume and checkpoint.latest(self.out) is not None:
            step = self.restore(checkpoint.read(self.out), optimiser, schedule, scaler, world)
        self.csv = self.open_log(resume=step > 0)
        data = iter(self.train_data(step))
        bar = self.progress_bar(step)
        bad, last = 0, {}
        tick, amount = time.perf_counter(), 0.0
        while step < cfg.steps:
            losses, logs = [], {}
            for micro in range(self.optim_config.accumulate):
                batch = next(data)
                self.skips.merge(batch.pop("skipped", {}))
                batch = to_device(batch, device)
                amount_now, unit = method.throughput(batch)
                amount += amount_now
                final_micro = micro == self.optim_config.accumulate - 1
                with (model.no_sync() if world > 1 and not final_micro else nullcontext()), torch.autocast(
                    device.type, dtype=dtype or torch.float32, enabled=dtype is not None
                ):
                    loss, logs = step_fn(batch)
                scaler.scale(loss / self.optim_config.accumulate).backward()
                losses.append(loss.detach())
            if not distributed.all_true(bool(torch.isfinite(torch.stack(losses)).all()), device):
                bad += 1
                optimiser.zero_grad(set_to_none=True)
                warnings.warn(f"non-finite loss at step {step + 1}: step skipped ({bad} in a row)", RuntimeWarning)
                if bad >= cfg.max_bad_steps:
                    raise RuntimeError(f"{bad} non-finite losses in a row at step {step + 1}: stopping the run")
                continue
            bad = 0
            if self.optim_config.grad_clip is not None:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(method.parameters(), self.optim_config.grad_clip)
            if scaler.is_enabled():  # fp16 only; a disabled scaler still costs ~0.35 ms a step
                scaler.step(optimiser)
                scaler.update()
            else:
                optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            schedule.step()
            step += 1
            method.after_optimiser_step(step)
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed, tick = time.perf_counter() - tick, time.perf_counter()
                last = {k: float(v) for k, v in logs.items()}
                last.update(lr=schedule.get_last_lr()[0], **{f"{unit}/s": amount / elapsed})
                amount = 0.0
                self.log(step, "train", last)
                bar.set_postfix(loss=f"{last['loss']:.3f}", **{f"{unit}/s": f"{last[f'{unit}/s']:.1f}"})
            bar.update(1)
            if self.val_data is not None and cfg.validate_every and step % cfg.validate_every == 0:
                self.log(step, "val", self.validate(model, dtype))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                self.save(step, optimiser, schedule, scaler, world)
                if step < cfg.steps:
                    data = iter(self.train_data(step))  # restarted here by every run, resumed or not
        bar.close()
        self.finish()
        return last

    def validate(self, model, dtype) -> dict[str, float]:
        """Mean of the method's logs over held-out batches, without touching the training RNG."""
        method = self.method
        method.eval()
        sums, count = defaultdict(float), 0
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices), torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            for batch in itertools.islice(self.val_data(), self.config.validation_batches):
                batch.pop("skipped", None)
                _, logs = method.training_step(to_device(batch, self.device))
                for k, v in logs.items():
                    sums[k] += float(v)
                count += 1
        method.train()
        means = {k: v / max(count, 1) for k, v in sums.items()}
        return distributed.mean_over_ranks(means, count, self.device)

    def save(self, step, optimiser, schedule, scaler, world) -> None:
        states = [None] * world
        if world > 1:
            dist.all_gather_object(states, checkpoint.rng_states(self.device))
        else:
            states = [checkpoint.rng_states(self.device)]
        if self.rank == 0:
            exported = self.method.exported
            state = {
                "model": self.method.state_dict(),
                "model_config": checkpoint.model_record(getattr(self.method, exported), prefix=f"{exported}."),
                "optimiser": optimiser.state_dict(),
                "scheduler": schedule.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "epoch": 0,  # step-based training; kept for the common layout
                "data_start": step,  # the stream restarts at this step (see fit)
                "rng": states,
                "config": self.run_config,
                "version": __version__,
            }
            checkpoint.save(state, self.out, step, self.config.keep_checkpoints)

    def restore(self, state, optimiser, schedule, scaler, world) -> int:
        self.method.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if len(state["rng"]) == world:
            checkpoint.restore_rng(state["rng"][self.rank], self.device)
        else:
            warnings.warn(f"checkpoint has RNG states for {len(state['rng'])} ranks, this run has {world}: "
                          "random draws will differ from the original run", RuntimeWarning)
        return state["step"]

    def open_log(self, resume: bool):
        """out/log.csv in long form (step, split, name, value), appended to on resume."""
        if self.rank != 0:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "log.csv"
        fresh = not (resume and path.exists())
        stream = open(path, "w" if fresh else "a", newline="")
        writer = csv.writer(stream)
        if fresh:
            writer.writerow(["step", "split", "name", "value"])
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(self.out / "tensorboard")
        except ImportError:
            self.tensorboard = None
        return stream, writer

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        if self.rank != 0:
            return
        stream, writer = self.csv
        for name, value in values.items():
            writer.writerow([step, split, name, f"{value:.6g}"])
            self.history.append((step, split, name, value))
            if self.tensorboard is not None:
                self.tensorboard.add_scalar(f"{split}/{name}", value, step)
        stream.flush()

    def progress_bar(self, step: int):
        from tqdm import tqdm

        return tqdm(total=self.config.steps, initial=step, unit="step", dynamic_ncols=True,
                    disable=self.rank != 0 or not self.config.progress)

    def finish(self) -> None:
        if self.rank == 0:
            self.csv[0].close()
            if self.tensorboard is not None:
                self.tensorboard.close()
            from cpc.train.curves import plot_curves

            plot_curves(self.out / "log.csv", self.out / "curves.png")
            if self.skips.counts:
                print(f"skipped samples: {self.skips.report()}")
        distributed.teardown()
