"""How a formed batch is cut into forward passes: little padding, few passes, within the budgets.

A forward pass pads every sequence to its longest, so one 500-token input in a pass of 31 short ones
makes the pass cost 32 x 500 tokens. The batch is sorted by length and cut where the padding saved
outweighs the fixed cost of one more pass (``overhead`` tokens' worth: the runtime's per-call work).
The cut is exact (dynamic programming over the sorted lengths) and cheap: n x max_items steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

# The fixed cost of one forward pass in tokens' worth of compute, for int8 encoders on ONNX Runtime with
# 2 cores. On an AVX2 machine (int8 MiniLM): 8.3 ms for 1 x 16 tokens, 0.36-0.40 ms per token in larger
# passes, so about 12 tokens' worth. On an AVX-512 VNNI machine: 91 texts/s one at a time against 107/s
# in sorted batches of 32 at ~100 tokens a text, about 16-18 tokens' worth.
PASS_OVERHEAD_TOKENS = 16


def plan_passes(lengths: Sequence[int], max_items: int, max_tokens: int,
                overhead: int = PASS_OVERHEAD_TOKENS) -> list[tuple[int, int]]:
    """Cut ``lengths`` (sorted ascending) into passes ``[(start, stop), ...]`` of least padded cost.

    A pass of ``n`` sequences padded to ``L`` costs ``overhead + n * L``; every pass has at most
    ``max_items`` sequences and at most ``max_tokens`` padded tokens (a single sequence longer than
    that still gets a pass of its own).

    Example:
        >>> plan_passes([10, 11, 12, 200], max_items=32, max_tokens=8192)
        [(0, 3), (3, 4)]
    """
    n = len(lengths)
    if any(b < a for a, b in itertools.pairwise(lengths)):
        raise ValueError("plan_passes needs lengths sorted ascending")
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for stop in range(1, n + 1):
        width = lengths[stop - 1]  # the longest of any pass ending here
        for start in range(stop - 1, max(stop - max_items, 0) - 1, -1):
            size = stop - start
            if size > 1 and size * width > max_tokens:
                break
            cost = best[start] + overhead + size * width
            if cost < best[stop]:
                best[stop], cut[stop] = cost, start
    passes, stop = [], n
    while stop > 0:
        passes.append((cut[stop], stop))
        stop = cut[stop]
    return passes[::-1]


def padded_tokens(lengths: Sequence[int], passes: list[tuple[int, int]]) -> int:
    """Tokens the passes run, padding included."""
    return sum((b - a) * lengths[b - 1] for a, b in passes)
