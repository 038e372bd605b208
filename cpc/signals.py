"""Stop signals as flags: a handler that records SIGINT / SIGTERM / SIGUSR1 instead of raising wherever the process
happens to be, so a long job stops at a point of its own choosing. Python's own Ctrl-C (KeyboardInterrupt raised
at the next bytecode) is lost when that bytecode runs inside a C callback or a finaliser: soundfile encodes FLAC
through cffi callbacks, which print "Exception ignored from cffi callback" and carry on."""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")
REQUEUE_SIGNALS = ("SIGTERM", "SIGUSR1")  # a scheduler ending or preempting the job, or SLURM's --signal warning
T = TypeVar("T")


@contextmanager
def stop_signals(names: tuple[str, ...] = STOP_SIGNALS):
    """The signals `names` append their name to the list this yields instead of ending the process; a second
    Ctrl-C raises KeyboardInterrupt at once. Off the main thread signals are left alone (the list stays empty).
    Installed before a data loader starts, its forked workers inherit the handlers and outlive a signal sent to
    the whole process group."""
    received: list[str] = []

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if name == "SIGINT" and name in received:
            raise KeyboardInterrupt
        received.append(name)

    previous = {}
    try:
        for name in names:
            previous[name] = signal.signal(getattr(signal, name), handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield received
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


def interruptible(items: Iterable[T]) -> Iterator[T]:
    """`items`, with a Ctrl-C during any of them raised as KeyboardInterrupt before the next one (or at the end),
    wherever inside the work it arrived."""
    with stop_signals(("SIGINT",)) as received:
        for item in items:
            if received:
                raise KeyboardInterrupt
            yield item
        if received:
            raise KeyboardInterrupt
