"""Timing shared by the benchmarks: this machine drifts by 10-15 % between identical runs, so report the best."""

from __future__ import annotations

import time


def best_of(fn, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls of fn, after one warm-up call (allocator, oneDNN kernel choice)."""
    return interleaved_best_of({"fn": fn}, repeats)["fn"]


def interleaved_best_of(fns: dict, repeats: int) -> dict:
    """Seconds of the fastest call of each fn, calls alternating between them (A B A B ...) so that drift of the
    machine during the run hits every contender alike; one warm-up call each first."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
