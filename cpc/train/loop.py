"""What the training loop carries from step to step, besides the networks and the optimiser: the step and the
training stream's position (LoopState), the skipped-step counts kept on the device (SkippedSteps), and what a
logging step gathers over ranks (TrainReport).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from cpc.data.stages import StreamPosition
from cpc.train.stopping import StopRequest

@dataclass
class SkippedSteps:
    """Steps skipped for non-finite gradients, counted on the device (no host sync per step): since the last log,
    in a row now, and the longest run in a row since the last log (0-dim float tensors)."""

    since_log: torch.Tensor
    in_a_row: torch.Tensor
    longest: torch.Tensor

    @classmethod
    def on(cls, device: torch.device) -> SkippedSteps:
        return cls(*(torch.zeros((), device=device) for _ in range(3)))

    def add(self, found_inf: torch.Tensor) -> None:
        """Count one optimiser step; `found_inf` (1. or 0.) says whether it was skipped."""
        self.since_log += found_inf
        self.in_a_row = (self.in_a_row + found_inf) * found_inf
        self.longest = torch.maximum(self.longest, self.in_a_row)

    def logged(self) -> None:
        self.since_log.zero_()
        self.longest.copy_(self.in_a_row)


@dataclass
class LoopState:
    """What the training loop carries from step to step, besides the networks and the optimiser: the step, the
    training stream's position (what a checkpoint records to resume from), the skipped steps and the amount of
    data since the last log, and the last logged values."""

    step: int
    position: StreamPosition
    skipped: SkippedSteps
    amount: float = 0.0  # of `unit` (the method's: samples, frames, ...) since the last log
    unit: str = "samples"
    since: float = field(default_factory=time.perf_counter)  # when the last log was written
    logs: dict[str, float] = field(default_factory=dict)

    @property
    def rate_name(self) -> str:
        return f"{self.unit}/s"

    def count(self, amount: float, unit: str) -> None:
        """Add a micro-batch's amount of data to the throughput."""
        self.amount, self.unit = self.amount + amount, unit

    def stepped(self, found_inf: torch.Tensor, batches: int) -> None:
        """One optimiser step taken (skipped if `found_inf`), after reading `batches` batches of the stream."""
        self.step += 1
        self.position = self.position.advanced(batches)
        self.skipped.add(found_inf)

    def rate(self) -> float:
        """This rank's amount of data per second since the last log."""
        return self.amount / (time.perf_counter() - self.since)

    def logged(self, values: dict[str, float]) -> None:
        """The counts since the last log start again; `values` become the last logs."""
        self.logs, self.amount, self.since = values, 0.0, time.perf_counter()
        self.skipped.logged()


@dataclass
class TrainReport:
    """A logging step's values gathered over ranks: the logs, the skipped steps since the last log (and the longest
    run of them in a row), and the stop request of any rank."""

    values: dict[str, float]
    skipped: int
    longest: int
    stop: StopRequest
