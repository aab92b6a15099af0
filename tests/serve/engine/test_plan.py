"""Cutting a formed batch into forward passes: least padded cost, within the budgets."""

from __future__ import annotations

import itertools
import random

import pytest

from serve.engine.plan import padded_tokens, plan_passes


def _cost(lengths, passes, overhead):
    return overhead * len(passes) + padded_tokens(lengths, passes)


def _brute_force(lengths, max_items, max_tokens, overhead):
    """The cheapest valid cut of sorted lengths into consecutive passes, by trying every cut."""
    n, best = len(lengths), None
    for mask in itertools.product([0, 1], repeat=n - 1):
        cuts = [0] + [i + 1 for i, m in enumerate(mask) if m] + [n]
        passes = list(itertools.pairwise(cuts))
        if any(b - a > max_items or (b - a > 1 and (b - a) * lengths[b - 1] > max_tokens) for a, b in passes):
            continue
        cost = _cost(lengths, passes, overhead)
        if best is None or cost < best:
            best = cost
    return best


@pytest.mark.parametrize("seed", range(40))
def test_plan_is_optimal_and_within_budgets(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 10)
    lengths = sorted(rng.choice([rng.randint(3, 40), rng.randint(40, 300)]) for _ in range(n))
    max_items, max_tokens, overhead = rng.randint(1, 8), rng.choice([64, 256, 1024]), rng.choice([0, 16, 64])
    passes = plan_passes(lengths, max_items, max_tokens, overhead)
    assert passes[0][0] == 0 and passes[-1][1] == n
    assert all(a < b and b == c for (a, b), (c, _) in itertools.pairwise(passes))
    for a, b in passes:
        assert b - a <= max_items
        assert b - a == 1 or (b - a) * lengths[b - 1] <= max_tokens
    assert _cost(lengths, passes, overhead) == _brute_force(lengths, max_items, max_tokens, overhead)


def test_one_long_input_does_not_pad_the_short_ones():
    lengths = [12] * 31 + [500]
    passes = plan_passes(lengths, 32, 16384)
    assert passes == [(0, 31), (31, 32)]
    assert padded_tokens(lengths, passes) == 31 * 12 + 500  # against 32 * 500 in one pass


def test_similar_lengths_share_a_pass_and_unsorted_input_is_refused():
    assert plan_passes([30, 31, 31, 32], 32, 8192) == [(0, 4)]
    with pytest.raises(ValueError, match="sorted"):
        plan_passes([5, 3], 32, 8192)
