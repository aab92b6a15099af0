"""The structured method: a parameter fraction or a speed budget, and a pruned graph that still exports."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import encode, mask_tokens
from compress.export import TaskGraph, export_onnx
from compress.prune import prune_model
from compress.prune.cost import TimeCost
from compress.prune.model_parts import all_parts, encoder_params, head_cost, neuron_cost
from compress.prune.structured import StructuredConfig
from compress.runtime import OnnxRunner, TorchRunner
from compress.sources import load_model
from tests.compress.prune.conftest import SCORING
from tests.conftest import SENTENCES


@pytest.mark.slow  # prunes and measures several times
def test_structured_meets_the_fraction_and_keeps_a_head_per_layer(bert):
    cfg = StructuredConfig(fraction=0.5, min_heads=1, min_neurons=16, neuron_multiple=8, rounds=2,
                           scoring=SCORING)
    result = prune_model(bert, cfg, SENTENCES)
    unit = max(head_cost(all_parts(bert.model)[0]), 8 * neuron_cost(all_parts(bert.model)[0]))
    assert 0.5 <= result.removed_fraction <= 0.5 + unit / result.params_before
    assert result.params_after == encoder_params(result.model)
    assert all(len(r["heads_kept"]) >= 1 and r["neurons_kept"] >= 16 for r in result.layers)
    rec = result.record()
    assert rec["method"] == "structured" and rec["plan"] == result.plan.to_dict()
    assert rec["config"]["fraction"] == 0.5 and bert.model is not result.model
    assert rec["estimated_speedup"]["value"] > 1 and rec["estimated_speedup"]["seq_len"] <= 32


def test_structured_targets_are_a_fraction_or_a_speedup():
    assert StructuredConfig().fraction == 0.4 and StructuredConfig().head_cost_factor == 2.0
    fast = StructuredConfig(speedup=1.6)
    assert fast.fraction is None and fast.head_cost_factor == 1.0  # estimated time already counts attention
    with pytest.raises(ValueError, match="not both"):
        StructuredConfig(fraction=0.4, speedup=1.6)
    with pytest.raises(ValueError, match="above 1"):
        StructuredConfig(speedup=0.8)


@pytest.mark.slow  # prunes until the estimate meets each budget
@pytest.mark.parametrize("target", [1.2, 1.45])  # the tiny model reaches 1.59x at most
def test_speed_budget_removes_just_enough_estimated_time(bert, target):
    cfg = StructuredConfig(speedup=target, seq_len=32, min_neurons=16, neuron_multiple=8, rounds=2, scoring=SCORING)
    result = prune_model(bert, cfg, SENTENCES)
    clock = TimeCost(seq_len=32)
    before, after = clock.encoder(bert.model), clock.encoder(result.model)
    assert before / after >= target
    assert result.record()["estimated_speedup"] == {"value": round(before / after, 3), "seq_len": 32}
    # greedy by whole units: one unit less would miss the target
    parts = all_parts(bert.model)[0]
    assert after > before / target - max(clock.head(parts), 8 * clock.neuron(parts))
    assert all(len(r["heads_kept"]) >= 1 and r["neurons_kept"] >= 16 for r in result.layers)


def test_speed_budget_out_of_reach_says_how_far_it_can_go(bert):
    cfg = StructuredConfig(speedup=20, seq_len=32, min_neurons=16, neuron_multiple=8, scoring=SCORING)
    with pytest.raises(ValueError, match=r"out of reach .* at most \d+\.\d+x"):
        prune_model(bert, cfg, SENTENCES)


@pytest.mark.parametrize("family,task", [("bert", "fill-mask"), ("distilbert", "classification"),
                                         ("roberta", "embedding")])
def test_pruned_model_exports_and_onnx_matches_torch(tiny, tmp_path, family, task):
    loaded = load_model(str(tiny(family, task)))
    result = prune_model(loaded, StructuredConfig(fraction=0.4, min_neurons=16, neuron_multiple=8, rounds=1,
                                                  head_cost_factor=4.0, scoring=SCORING), SENTENCES)
    assert any(len(r["heads_kept"]) < 4 for r in result.layers)  # uneven heads per layer export too
    tok = loaded.tokenizer
    graph = TaskGraph(result.model, task, mask_token_id=tok.mask_token_id, pooling="mean")
    info = export_onnx(graph, tmp_path / "pruned.onnx")
    full = export_onnx(TaskGraph(loaded.model, task, mask_token_id=tok.mask_token_id), tmp_path / "full.onnx")
    assert (tmp_path / "pruned.onnx").stat().st_size < 0.8 * (tmp_path / "full.onnx").stat().st_size
    assert info["outputs"] == full["outputs"]
    onnx_run, torch_run = OnnxRunner(tmp_path / "pruned.onnx", threads=1), TorchRunner(graph, info["inputs"])
    for n in (1, 5):
        enc = encode(tok, SENTENCES[n:2 * n], 64)
        if task == "fill-mask":
            enc, _ = mask_tokens(enc, tok)
        a, b = onnx_run(enc), torch_run(enc)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], atol=1e-4, rtol=1e-4)
