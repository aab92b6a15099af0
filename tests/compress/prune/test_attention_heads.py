"""The heads method."""

from __future__ import annotations

import torch

from compress.prune import prune_model
from compress.prune.attention_heads import HeadsConfig
from compress.prune.batches import BatchStream
from compress.prune.importance import unit_importance
from compress.prune.model_parts import all_parts, head_cost
from tests.compress.prune.conftest import SCORING
from tests.conftest import SENTENCES


def test_heads_method_removes_the_least_important_heads(bert):
    cfg = HeadsConfig(fraction=0.25, refit=None, scoring=SCORING)
    result = prune_model(bert, cfg, SENTENCES)
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=0)
    scores = torch.cat(unit_importance(bert.model, "fill-mask", stream.batches(3)).heads)
    lowest = sorted(torch.argsort(scores)[:2].tolist())  # 2 of 8 heads; 1 per layer is kept anyway
    assert sorted(layer * 4 + h for layer, hs in result.plan.heads.items() for h in hs) == lowest
    assert result.params_before - result.params_after == 2 * head_cost(all_parts(bert.model)[0])
    assert sum(len(r["heads_kept"]) for r in result.layers) == 6
