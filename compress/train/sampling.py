"""Which task each step trains, and which of its examples: fixed by the seed, so a resumed run draws
what the interrupted one would have."""

from __future__ import annotations

import numpy as np

from compress.train.options import TrainOptions


def task_probabilities(sizes: list[int], opts: TrainOptions) -> np.ndarray:
    """Each task's share of the steps: proportional to its training examples, uniform, or by temperature
    (size ** (1 / T): T = 1 is proportional, a large T tends to uniform)."""
    n = np.asarray(sizes, dtype=np.float64)
    if opts.sampling == "uniform":
        weights = np.ones_like(n)
    elif opts.sampling == "temperature":
        weights = n ** (1.0 / opts.temperature)
    else:
        weights = n
    return weights / weights.sum()  # type: ignore[no-any-return]


def schedule(sizes: list[int], steps: int, opts: TrainOptions) -> np.ndarray:
    """The task index of every step."""
    rng = np.random.default_rng([opts.seed, 7])
    return rng.choice(len(sizes), size=steps, p=task_probabilities(sizes, opts))


def draw(n_examples: int, per_batch: int, k: int, seed: list[int]) -> list[int]:
    """The indices of a task's ``k``-th batch: epochs of a fresh permutation each, the remainder dropped."""
    per_batch = min(per_batch, n_examples)
    epoch, j = divmod(k, n_examples // per_batch)
    order = np.random.default_rng([*seed, epoch]).permutation(n_examples)
    return [int(i) for i in order[j * per_batch:(j + 1) * per_batch]]


def default_steps(sizes: list[int], batch_size: int, epochs: list[float]) -> int:
    """``epochs[i]`` passes over task i's training examples, at least 100 steps in all."""
    return max(100, round(sum(e * -(-n // batch_size) for n, e in zip(sizes, epochs, strict=True))))
