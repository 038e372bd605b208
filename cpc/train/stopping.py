"""Stopping a run by signal: Ctrl-C (SIGINT) and a scheduler's SIGTERM / SIGUSR1 are caught (cpc.signals) and
turned into a StopRequest that the training loop honours at a step boundary, after a checkpoint; `stopped_at` is the exception
that then ends the run (Interrupted, or Preempted with the requeue exit status).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cpc.errors import REQUEUE_EXIT_STATUS, Interrupted, Preempted
from cpc.signals import REQUEUE_SIGNALS

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
