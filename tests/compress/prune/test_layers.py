"""The layers method."""

from __future__ import annotations

import numpy as np
import pytest

from compress.prune import prune_model
from compress.prune.batches import BatchStream
from compress.prune.importance import ScoreConfig, layer_importance
from compress.prune.layers import LayersConfig
from tests.conftest import SENTENCES


def test_layers_method_keeps_the_layer_that_matters_more(bert):
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=0)
    loss_without = layer_importance(bert.model, "fill-mask", stream.batches(2))
    result = prune_model(bert, LayersConfig(keep=1, scoring=ScoreConfig(batches=2, batch_size=8, max_length=32)),
                         SENTENCES)
    assert result.plan.layers == [int(np.argmax(loss_without))]
    assert result.layers[1 - result.plan.layers[0]]["removed"]
    assert result.removed_fraction == pytest.approx(0.5, abs=1e-6)
