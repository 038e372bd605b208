"""Stopping a run by signal: Ctrl-C (SIGINT) and a scheduler's SIGTERM / SIGUSR1 are caught and turned into a
StopRequest that the training loop honours at a step boundary, after a checkpoint; `stopped_at` is the exception
that then ends the run (Interrupted, or Preempted with the requeue exit status).
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cpc.errors import REQUEUE_EXIT_STATUS, Interrupted, Preempted

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")
REQUEUE_SIGNALS = ("SIGTERM", "SIGUSR1")  # a scheduler ending or preempting the job, or SLURM's --signal warning


@contextmanager
def stop_signals():
    """SIGINT (Ctrl-C), SIGTERM and SIGUSR1 append their name to the list this yields instead of ending the process
    mid-step; the loop stops at a step boundary (a second Ctrl-C stops at once). Installed before the data loader
    starts, so its forked workers inherit the handlers and outlive a signal sent to the whole process group."""
    received: list[str] = []

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if name == "SIGINT" and name in received:
            raise KeyboardInterrupt
        received.append(name)

    previous = {}
    try:
        for name in STOP_SIGNALS:
            previous[name] = signal.signal(getattr(signal, name), handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield received
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


@dataclass(frozen=True)
class StopRequest:
    """A stop asked for by a signal: Ctrl-C (interrupted) or a scheduler's SIGTERM / SIGUSR1 (preempted)."""

    interrupted: bool = False
    preempted: bool = False

    @classmethod
    def of(cls, received: list[str]) -> StopRequest:
        return cls("SIGINT" in received, any(name in REQUEUE_SIGNALS for name in received))

    def flags(self) -> tuple[bool, bool]:
        return self.interrupted, self.preempted

    def __bool__(self) -> bool:
        return self.interrupted or self.preempted


def stopped_at(step: int, path: Path | None, requeue: bool, received: list[str]) -> Interrupted:
    """The exception that ends a run stopped by a signal, naming the checkpoint of `step`."""
    if not requeue:
        return Interrupted(f"interrupted at step {step}; checkpoint {path}; continue with --resume")
    name = next((s for s in received if s in REQUEUE_SIGNALS), "SIGTERM or SIGUSR1 to another process")
    return Preempted(f"stopped by {name} at step {step}; checkpoint {path}; continue with --resume (exit status "
                     f"{REQUEUE_EXIT_STATUS}: requeue)")
