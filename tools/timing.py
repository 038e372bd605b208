"""Timing shared by the benchmarks: this machine drifts by 10-15 % between identical runs, so report the best."""

from __future__ import annotations

import time


def best_of(fn, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls of fn, after one warm-up call (allocator, oneDNN kernel choice)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
