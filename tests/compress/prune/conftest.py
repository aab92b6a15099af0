"""Shared by the pruning tests: a tiny BERT fill-mask model and cheap importance scoring."""

from __future__ import annotations

import pytest

from compress.prune.importance import ScoreConfig
from compress.sources import load_model

SCORING = ScoreConfig(batches=3, batch_size=8, max_length=32)


@pytest.fixture
def bert(tiny):
    """A tiny BERT fill-mask model (2 layers, hidden 64, 4 heads of 16, 128 neurons)."""
    return load_model(str(tiny("bert", "fill-mask")))
