"""The neurons method."""

from __future__ import annotations

from compress.prune import prune_model
from compress.prune.model_parts import all_parts, neuron_cost
from compress.prune.neurons import NeuronsConfig
from tests.compress.prune.conftest import SCORING
from tests.conftest import SENTENCES


def test_neurons_method_removes_whole_chunks_of_the_least_important(bert):
    result = prune_model(bert, NeuronsConfig(fraction=0.3, neuron_multiple=8, min_neurons=8, refit=None,
                                             scoring=SCORING), SENTENCES)
    kept = [r["neurons_kept"] for r in result.layers]
    assert sum(kept) == 256 - 72 and all(k % 8 == 0 for k in kept)  # round(0.3 * 256) = 77 -> 72
    assert result.params_before - result.params_after == 72 * neuron_cost(all_parts(bert.model)[0])
    assert all(len(r["heads_kept"]) == 4 for r in result.layers)
