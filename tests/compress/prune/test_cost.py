"""The estimated time cost of heads and neurons."""

from __future__ import annotations

import torch

from compress.prune.cost import TimeCost
from compress.prune.importance import Importance
from compress.prune.model_parts import all_parts
from compress.prune.structured import StructuredConfig, select


def test_time_cost_makes_heads_dearer_for_long_sequences(bert):
    parts = all_parts(bert.model)
    short, long = TimeCost(seq_len=8), TimeCost(seq_len=512)
    assert long.head(parts[0]) > 4 * short.head(parts[0]) and long.neuron(parts[0]) == short.neuron(parts[0])
    # Every head scores 1, every neuron 0.005: per unit of time a neuron is cheaper to lose at 8 tokens,
    # a head at 512, where its attention work dominates; the first unit removed shows the ranking.
    imp = Importance(heads=[torch.ones(4) for _ in parts], neurons=[torch.full((128,), 0.005) for _ in parts])
    cfg = StructuredConfig(speedup=1.3, neuron_multiple=8, min_neurons=16)
    first = {clock.seq_len: select(parts, imp, cfg, 1.0, clock) for clock in (short, long)}
    assert first[8].neurons and not any(first[8].heads.values())
    assert sum(map(len, first[512].heads.values())) == 1 and not first[512].neurons
