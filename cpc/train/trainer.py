"""The one trainer: a Method, a data stream and an optimiser config in; checkpoints, logs and curves out.

Step-based. CUDA when present (bf16 autocast, or fp16 with a grad scaler), else CPU fp32. Under torchrun, DDP
(NCCL on GPUs, gloo on CPU); rank 0 chooses the checkpoint to resume from and sends it to every rank, logs and
writes checkpoints. Exact resume: the data stream's randomness restarts at fixed batch positions (see
cpc.data.stages), and every rank's RNG states are saved, so a run resumed from step n sees exactly the batches
and random draws the uninterrupted run saw.

No host-device sync per step: a step with non-finite gradients is skipped on the device (the fused optimisers
take a `found_inf` flag), and the counts are read every `log_every` steps.

What the loop carries from step to step is in cpc.train.loop; how a signal stops it, in cpc.train.stopping.
"""

from __future__ import annotations

import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from cpc import checkpoint
from cpc.config import differences
from cpc.data.stages import SkipCounter, StreamPosition
from cpc.errors import UserError
from cpc.signals import stop_signals
from cpc.train import distributed
from cpc.train.allocator import limit_allocator_slack
from cpc.train.loop import LoopState, SkippedSteps, TrainReport
from cpc.train.optim import OptimConfig, build_optimiser, build_schedule
from cpc.train.runlock import RunLock
from cpc.train.runlog import RunLog
from cpc.train.stopping import StopRequest, stopped_at
from cpc.train.validation import validate
from cpc.version import __version__

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Settings a resumed run may change: they do not alter what the run computes step by step (a resumed run starts
# from its own checkpoint, so train.init_from no longer matters).
RESUMABLE_CHANGES = ("train.steps", "train.out", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                     "train.validate_every", "train.validation_batches", "train.progress", "train.compile",
                     "train.precision", "train.device", "train.malloc_trim_mb", "train.dist_timeout_minutes",
                     "train.cudnn_benchmark", "train.tf32", "train.init_from", "data.prefetch", "data.workers",
                     "val_shards")


@dataclass
class TrainConfig:
    steps: int = 1000
    out: str = "runs/cpc"
    seed: int = 0
    precision: str = "auto"  # auto: bf16 (or fp16 + grad scaler) on CUDA, fp32 on CPU
    device: str = "auto"  # auto: CUDA when present, else CPU
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate_every: int = 0  # 0: no validation
    validation_batches: int = 50  # lockstep validation steps; 0: every validation sample
    log_every: int = 10
    max_bad_steps: int = 10  # consecutive steps with non-finite gradients before the run stops
    compile: bool = False  # torch.compile the method's networks
    progress: bool = True
    sync_batchnorm: bool = False  # image methods under DDP: BatchNorm statistics over the global batch
    cudnn_benchmark: bool = True  # cuDNN picks the fastest kernels for the (fixed) input shapes
    tf32: bool = True  # float32 matmuls and convolutions on TF32 tensor cores (Ampere and later)
    dist_timeout_minutes: float = 30.0  # how long a collective waits (a checkpoint write must fit)
    malloc_trim_mb: float = 0.0  # >0: glibc returns freed memory above this many MB (-0.1 GB peak, -25 % speed)
    # A checkpoint (file, run folder or exported .pt) whose weights start a fresh run of the same architecture:
    # fine-tuning on other data or with other settings. The optimiser, schedule, step and data stream start anew;
    # a resumed run continues from its own checkpoint instead.
    init_from: str = ""


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


def weight_mismatches(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    """What keeps `given` from loading into a module whose state dict is `own`, one phrase per key. Keys of `own`
    that `given` lacks are not among them: those are new modules (a head added for fine-tuning)."""
    unexpected = [f"{key} not in this model" for key in given if key not in own]
    shapes = [f"{key} {tuple(given[key].shape)} where this model has {tuple(value.shape)}"
              for key, value in own.items() if key in given and given[key].shape != value.shape]
    return unexpected + shapes


def new_modules(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    """The modules (first two name parts, e.g. model.regressor) whose weights `given` does not have."""
    return sorted({".".join(key.split(".")[:2]) for key in own if key not in given})


def set_backends(config: TrainConfig, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = config.tf32
        torch.backends.cudnn.allow_tf32 = config.tf32


class Trainer:
    """`fit()` trains `method` (a cpc.methods.Method) on batches from `train_data(start, segment)` (the batch and
    segment of the stream's StreamPosition) for config.steps optimiser steps; `val_data()` gives a loader that is
    iterated once per validation."""

    def __init__(
        self,
        method: torch.nn.Module,
        train_data: Callable[[int, int], Iterable[dict[str, Any]]],
        optim: OptimConfig,
        config: TrainConfig,
        val_data: Callable[[], Iterable[dict[str, Any]]] | None = None,
        run_config: dict[str, Any] | None = None,
    ):
        self.method, self.train_data, self.val_data = method, train_data, val_data
        self.optim_config, self.config, self.run_config = optim, config, run_config or {}
        self.out = Path(config.out)
        self.skips = SkipCounter()
        self.own: list[Path] = []  # checkpoints of this run (written, or the lineage it resumed from)
        self.lock = RunLock(self.out)  # taken by rank 0 before it looks at the folder
        self.runlog: RunLog | None = None

    def fit(self, resume: bool = False, overwrite: bool = False) -> dict[str, float]:
        """Train to config.steps; the last logs, or {} when a resumed run had reached config.steps already.
        Ctrl-C raises Interrupted, SIGTERM / SIGUSR1 raise Preempted, each after a checkpoint of the step."""
        cfg = self.config
        device, self.rank, self.world = distributed.setup(cfg.device, cfg.dist_timeout_minutes)
        self.device = device
        try:
            # Handlers first: the data loader's workers, forked below, inherit them.
            with stop_signals() as received:
                return self.fit_steps(resume, overwrite, received)
        except BaseException:
            self.abandon()  # a failed run leaves a closed log, no lock and no process group behind
            raise

    def fit_steps(self, resume: bool, overwrite: bool, received: list[str]) -> dict[str, float]:
        """fit() with the stop signals' names arriving in `received`."""
        cfg, method, accumulate = self.config, self.prepare_method(), self.optim_config.accumulate
        optimiser = build_optimiser(method.param_groups(self.optim_config.weight_decay), self.optim_config)
        schedule = build_schedule(optimiser, cfg.steps, self.optim_config)
        dtype = autocast_dtype(cfg.precision, self.device)
        scaler = torch.amp.GradScaler(self.device.type, enabled=dtype == torch.float16)
        self.scaled = scaler.is_enabled()
        torch.manual_seed(cfg.seed + self.rank)  # distinct random draws per rank (negatives, masks)
        state = self.starting_state(resume, overwrite)
        if state is not None and state["step"] >= cfg.steps:  # said by choose_checkpoint
            self.release()
            return {}
        loop = LoopState(0, StreamPosition(0, cfg.checkpoint_every * accumulate), SkippedSteps.on(self.device))
        ddp = distributed.active()  # DDP whenever a process group exists (also at world 1, e.g. to test it)
        if state is not None:
            loop = self.restore(state, loop, optimiser, schedule, scaler)
        elif cfg.init_from:
            self.initialise_from(cfg.init_from)
        model = self.wrapped(method)
        self.runlog = RunLog(self.out, loop.step if state is not None else None) if self.rank == 0 else None
        data = iter(self.train_data(loop.position.batch, loop.position.segment))
        val_loader = self.val_data() if self.val_data is not None else None
        bar = self.progress_bar(loop.step)
        loop.since = time.perf_counter()  # the throughput counts from the first step
        while loop.step < cfg.steps:
            for micro in range(accumulate):
                sync = not ddp or micro == accumulate - 1  # DDP all-reduces the gradients at the last one
                logs = self.forward_backward(model, next(data), loop, sync, dtype, scaler)
            loop.stepped(self.update(optimiser, scaler), batches=accumulate)
            schedule.step()
            method.after_optimiser_step(loop.step)
            # Every rank must stop at the same step (a checkpoint is a collective), so a signal takes effect once
            # the request has travelled with the logs' all-reduce: at the next logging step.
            asked, stop = StopRequest.of(received), StopRequest()
            if loop.step % cfg.log_every == 0 or loop.step == cfg.steps or (asked and self.world == 1):
                report = self.gather_train_logs(loop, logs, schedule.get_last_lr()[0], asked)
                self.log_train(loop, report)
                stop = report.stop
                bar.set_postfix(loss=f"{loop.logs['loss']:.3f}", **{loop.rate_name: f"{loop.logs[loop.rate_name]:.1f}"})
            bar.update(1)
            if val_loader is not None and cfg.validate_every and loop.step % cfg.validate_every == 0:
                self.log(loop.step, "val", self.validate(val_loader, dtype))
            if loop.step % cfg.checkpoint_every == 0 or loop.step == cfg.steps or stop:
                path = self.save(loop, optimiser, schedule, scaler)
                if stop:
                    bar.close()
                    self.finish()
                    raise stopped_at(loop.step, path, requeue=stop.preempted, received=received)
        bar.close()
        self.finish()
        return loop.logs

    def prepare_method(self) -> torch.nn.Module:
        """The device's backends set, the method on the device (its BatchNorms synchronised if asked)."""
        cfg, device = self.config, self.device
        if self.rank > 0:
            warnings.simplefilter("ignore")  # every rank runs the same code: warn once, from rank 0
        set_backends(cfg, device)
        limit_allocator_slack(cfg.malloc_trim_mb)
        if cfg.sync_batchnorm and distributed.active():
            if device.type != "cuda":
                raise UserError("train.sync_batchnorm needs GPUs (torch's SyncBatchNorm trains on CUDA only); "
                                "set train.sync_batchnorm=false on the CPU")
            self.method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
        return self.method.to(device)

    def wrapped(self, method: torch.nn.Module) -> torch.nn.Module:
        """What a step calls: the method, in DDP whenever a process group exists, its networks compiled if
        asked."""
        model = method
        if distributed.active():
            model = torch.nn.parallel.DistributedDataParallel(
                method, device_ids=[self.device] if self.device.type == "cuda" else None)
        if self.config.compile:
            # The networks are compiled, the loss runs eagerly: compiling the whole step (torch 2.14, whose
            # dynamo graph-breaks at the GRU/LSTM) returned a loss without an autograd graph. Patching forward
            # keeps state_dict keys unchanged, and DDP's reducer hooks still fire as each network's backward ends.
            for network in method.children():
                network.forward = torch.compile(network.forward)
        return model

    def forward_backward(self, model, batch: dict[str, Any], loop: LoopState, sync: bool, dtype,
                         scaler) -> dict[str, torch.Tensor]:
        """One micro-batch: its skipped samples counted, the loss's gradient (scaled, divided by the
        accumulation) added, DDP's all-reduce only when `sync`; -> the method's logs."""
        self.skips.merge(batch.pop("skipped", {}))
        batch = to_device(batch, self.device)
        loop.count(*self.method.throughput(batch))
        with (nullcontext() if sync else model.no_sync()), torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            loss, logs = model(batch)
        scaler.scale(loss / self.optim_config.accumulate).backward()
        return logs

    def update(self, optimiser, scaler) -> torch.Tensor:
        """Clip and apply the step unless a gradient is inf or NaN (on any rank: gradients are already
        all-reduced), decided on the device; returns that flag (0-dim float)."""
        if scaler.is_enabled():
            scaler.unscale_(optimiser)
        grads = [p.grad for p in self.method.parameters() if p.grad is not None]
        found_inf = torch.zeros((), device=self.device)
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch.ones((), device=self.device))
        if self.optim_config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.optim_config.grad_clip, foreach=True)
        if scaler.is_enabled():  # fp16: the scaler skips on the same gradients' found_inf, then adjusts the scale
            scaler.step(optimiser)
            scaler.update()
        else:
            optimiser.grad_scale, optimiser.found_inf = None, found_inf  # read by the fused step kernels
            optimiser.step()
            del optimiser.grad_scale, optimiser.found_inf
        optimiser.zero_grad(set_to_none=True)
        return found_inf

    def gather_train_logs(self, loop: LoopState, logs: dict[str, torch.Tensor], lr: float,
                          stop: StopRequest) -> TrainReport:
        """The step's logs averaged over ranks, the throughput summed over ranks, the skipped-step counts and the
        stop request (set if set on any rank): one collective and one read from the device."""
        names = sorted(logs)
        skipped = loop.skipped
        values = torch.stack([logs[k].detach().float() for k in names]
                             + [torch.tensor(loop.rate(), device=self.device), skipped.since_log, skipped.longest]
                             + [torch.tensor(float(flag), device=self.device) for flag in stop.flags()])
        total = distributed.sum_over_ranks(values.to(self.device)).tolist()
        means = {k: v / self.world for k, v in zip(names, total)}
        means.update(lr=lr, **{loop.rate_name: total[len(names)]})
        return TrainReport(means, skipped=round(total[-4] / self.world), longest=round(total[-3] / self.world),
                           stop=StopRequest(interrupted=total[-2] > 0, preempted=total[-1] > 0))

    def log_train(self, loop: LoopState, report: TrainReport) -> None:
        """Write the report's logs and keep them as the loop's last; warn of steps skipped for non-finite
        gradients, and raise RuntimeError once max_bad_steps of them came in a row."""
        step, values = loop.step, dict(report.values)
        if report.skipped:
            values["skipped_steps"] = report.skipped
            fp16 = " (fp16: the grad scaler halves its scale after each; a few early on are normal)"
            warnings.warn(f"{report.skipped} step(s) up to step {step} had non-finite gradients and were skipped "
                          f"({report.longest} in a row at most){fp16 if self.scaled else ''}", RuntimeWarning)
        if report.longest >= self.config.max_bad_steps:
            raise RuntimeError(f"{report.longest} steps in a row with non-finite gradients by step {step}: stopping "
                               f"the run (train.max_bad_steps = {self.config.max_bad_steps})")
        self.log(step, "train", values)
        loop.logged(values)

    def validate(self, loader, dtype) -> dict[str, float]:
        """The method's logs over held-out batches (every sample once, weighted by sample), the training RNG
        untouched."""
        method = self.method
        method.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            means, samples, skips = validate(method.training_step, loader, self.device,
                                             self.config.validation_batches)
        method.train()
        if skips.counts and self.rank == 0:
            print(f"validation skipped: {skips.report()}")
        skipped = {"skipped": float(sum(skips.counts.values()))} if skips.counts else {}
        return {**means, "samples": float(samples), **skipped} if means else {}

    def starting_state(self, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        """The checkpoint to resume from, chosen by rank 0 and sent to every rank (other nodes may not have the
        file); a fresh run refuses a folder that already holds a run unless told to overwrite it."""
        state, error = None, None
        if self.rank == 0:
            try:
                state = self.choose_checkpoint(resume, overwrite)
            except UserError as caught:
                error = str(caught)
        state, error = distributed.broadcast_object((state, error))
        if error is not None:
            raise UserError(error)
        return state

    def initialise_from(self, source: str) -> None:
        """Load the weights of checkpoint `source` (read by rank 0 and sent to every rank, like a resumed state)."""
        weights, error = None, None
        if self.rank == 0:
            try:
                state = checkpoint.read(source)
                weights = state["model"]
                mismatched = weight_mismatches(self.method.state_dict(), weights)
                if mismatched:
                    error = (f"train.init_from {source}: its weights do not fit this model ({len(mismatched)} "
                             f"differ, e.g. {mismatched[0]}): start from a checkpoint of the same architecture "
                             "(the same cpc.model settings, or fewer heads), or drop train.init_from")
                else:
                    fresh = new_modules(self.method.state_dict(), weights)
                    print(f"initialised from {checkpoint.resolve(source)} (step {state.get('step', '?')}); "
                          "optimiser, schedule and data start anew"
                          + (f"; new, from their initialisation: {', '.join(fresh)}" if fresh else ""))
            except UserError as caught:
                error = f"train.init_from: {caught}"
        weights, error = distributed.broadcast_object((None if error else weights, error))
        if error is not None:
            raise UserError(error)
        self.method.load_state_dict(weights, strict=False)  # checked above: only new modules keep their init

    def choose_checkpoint(self, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        self.lock.acquire()  # before anything is read or deleted here
        for stale in checkpoint.remove_stale_temporaries(self.out):
            print(f"removed {stale.name}, left by an interrupted checkpoint write")
        existing = checkpoint.checkpoints(self.out)
        if not resume:
            if (existing or RunLog.has_rows(self.out)) and not overwrite:
                raise UserError(f"run folder {self.out} already holds a run ({len(existing)} checkpoint(s)): "
                                "continue it with --resume, or start over there with --overwrite (deletes its "
                                "checkpoints and logs), or choose another train.out")
            if overwrite:
                for path in existing + [self.out / "log.csv", self.out / "curves.png"]:
                    path.unlink(missing_ok=True)
                shutil.rmtree(self.out / "tensorboard", ignore_errors=True)
            return None
        path, state, skipped = checkpoint.newest_readable(self.out)
        for reason in skipped:
            warnings.warn(f"skipped a checkpoint that does not read: {reason}", RuntimeWarning)
        if state is None:
            if existing:
                raise UserError(f"no checkpoint in {self.out} reads ({len(existing)} tried): {skipped[0]}")
            print(f"--resume: no checkpoint in {self.out} yet: starting at step 0")
            return None
        self.check_changes(state.get("config", {}), path)
        self.own = [p for p in existing if int(checkpoint.PATTERN.search(p.name).group(1)) <= state["step"]]
        if state["step"] >= self.config.steps:
            print(f"nothing left to do: {path} is at step {state['step']} and train.steps is {self.config.steps} "
                  "(resume with a larger train.steps to train on)")
        else:
            print(f"resuming from {path} (step {state['step']})")
        return state

    def check_changes(self, saved: dict[str, Any], path: Path) -> None:
        """Refuse settings changed since the checkpoint that would break exact resume; say which others apply."""
        changes = differences(saved, self.run_config) if saved and self.run_config else []
        refused = [c for c in changes if not c[0].startswith(RESUMABLE_CHANGES)]
        if refused:
            listed = "; ".join(f"{k} {old!r} -> {new!r}" for k, old, new in refused)
            raise UserError(f"resuming {path} with settings that would break exact resume: {listed}: drop those "
                            "--set overrides, or start a new run in another train.out")
        for key, old, new in changes:
            print(f"resumed with {key} {old!r} -> {new!r}")

    def save(self, loop: LoopState, optimiser, schedule, scaler) -> Path | None:
        states = distributed.gather_objects(checkpoint.rng_states(self.device))
        if self.rank != 0:
            return None
        exported = self.method.exported
        state = {
            "model": self.method.state_dict(),
            "model_config": checkpoint.model_record(getattr(self.method, exported), prefix=f"{exported}."),
            "optimiser": optimiser.state_dict(),
            "scheduler": schedule.state_dict(),
            "scaler": scaler.state_dict(),
            "step": loop.step,
            "epoch": 0,  # step-based training; kept for the common layout
            checkpoint.DATA_POSITION: asdict(loop.position),
            "rng": states,
            "config": self.run_config,
            "version": __version__,
        }
        path = checkpoint.save(state, self.out, loop.step)
        self.own = checkpoint.prune(self.out, self.own + [path], self.config.keep_checkpoints)
        return path

    def restore(self, state, loop: LoopState, optimiser, schedule, scaler) -> LoopState:
        """Weights, optimiser, schedule, scaler and this rank's RNG states; -> `loop` at the checkpoint's step and
        stream position."""
        self.method.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["scheduler"])
        if scaler.is_enabled() and state.get("scaler"):  # a run resumed in another precision starts a new scale
            scaler.load_state_dict(state["scaler"])
        if len(state["rng"]) == self.world:
            checkpoint.restore_rng(state["rng"][self.rank], self.device)
        else:
            warnings.warn(f"checkpoint has RNG states for {len(state['rng'])} ranks, this run has {self.world}: "
                          "random draws will differ from the original run", RuntimeWarning)
        step = state["step"]
        position = checkpoint.data_position(state, batch=step * self.optim_config.accumulate,
                                            segment=loop.position.segment)
        return replace(loop, step=step, position=StreamPosition(**position))

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        if self.rank == 0 and values:
            self.runlog.write(step, split, values)

    def progress_bar(self, step: int):
        from cpc.progress import progress_bar

        return progress_bar(total=self.config.steps, initial=step, unit="step", dynamic_ncols=True,
                    disable=self.rank != 0 or not self.config.progress)

    def abandon(self) -> None:
        if self.runlog is not None:
            self.runlog.close(plot=False)
        self.release()

    def finish(self) -> None:
        if self.rank == 0:
            self.runlog.close()
            if self.skips.counts:
                print(f"skipped samples: {self.skips.report()}")
        self.release()

    def release(self) -> None:
        """The folder's lock (rank 0's) and the process group; safe to call again."""
        self.lock.release()
        distributed.teardown()
