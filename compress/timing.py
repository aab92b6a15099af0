"""Throughput of a runner on one batch: warm-up excluded, median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def throughput(runner: Callable[[dict[str, np.ndarray]], object], batch: dict[str, np.ndarray],
               repeats: int = 5, warmup: int = 1) -> float:
    """Sequences per second on ``batch`` (median over ``repeats`` timed runs)."""
    for _ in range(warmup):
        runner(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner(batch)
        times.append(time.perf_counter() - t0)
    return float(batch["input_ids"].shape[0] / statistics.median(times))
