"""Prune plans: exactly the chosen heads, neurons and layers go, the rest is untouched, and plans compose."""

from __future__ import annotations

import copy

import pytest
import torch

from compress.prune.batches import BatchStream
from compress.prune.importance import gates
from compress.prune.model_parts import all_parts, encoder_params, head_cost, neuron_cost, set_layers
from compress.prune.objectives import run
from compress.prune.plan import PrunePlan, apply_plan, compose, plan_shape
from tests.conftest import SENTENCES


def _batch(loaded, n=6, seed=0):
    return BatchStream(loaded.task, loaded.tokenizer, SENTENCES, batch_size=n, max_length=32, seed=seed).batch(0)


def _out(model, loaded, batch):
    with torch.no_grad():
        return run(model.eval(), loaded.task, batch, pooling=loaded.pooling).main


def test_plan_removes_exactly_the_chosen_heads_and_neurons(bert):
    original = bert.model
    plan = PrunePlan(heads={0: [1, 3], 1: [0]}, neurons={0: list(range(0, 128, 2)), 1: list(range(100))})
    pruned = apply_plan(copy.deepcopy(original), plan)
    p0, p1 = all_parts(pruned)
    o0 = all_parts(original)[0]
    assert (p0.num_heads, p1.num_heads, p0.num_neurons, p1.num_neurons) == (2, 3, 64, 100)
    assert tuple(pruned.bert.encoder.layer[0].attention.self.query.weight.shape) == (32, 64)
    assert tuple(p0.attn_out.weight.shape) == (64, 32) and tuple(p1.ffn_out.weight.shape) == (64, 100)
    removed = 3 * head_cost(o0) + (64 + 28) * neuron_cost(o0)
    assert encoder_params(original) - encoder_params(pruned) == removed == 3 * 16 * (4 * 64 + 3) + 92 * 129
    # the kept rows are the original rows of heads 0 and 2, untouched
    q = original.bert.encoder.layer[0].attention.self.query.weight
    torch.testing.assert_close(pruned.bert.encoder.layer[0].attention.self.query.weight,
                               torch.cat([q[0:16], q[32:48]]))
    # and the pruned model computes what the original computes with those units switched off
    batch = _batch(bert)
    with gates(original, 6) as (hg, ng), torch.no_grad():
        hg[0][:, [1, 3]] = 0
        hg[1][:, 0] = 0
        ng[0][:, 1::2] = 0
        ng[1][:, 100:] = 0
        expected = _out(original, bert, batch)
    torch.testing.assert_close(_out(pruned, bert, batch), expected, atol=1e-5, rtol=1e-5)
    assert pruned.config.pruned_heads == {0: [1, 3], 1: [0]}


def test_plan_keeps_the_chosen_layers(bert):
    pruned = apply_plan(copy.deepcopy(bert.model), PrunePlan(heads={0: [2]}, layers=[1]))
    assert pruned.config.num_hidden_layers == 1 and len(pruned.bert.encoder.layer) == 1
    assert pruned.config.pruned_heads == {}  # layer 0 (with the pruned head) is gone
    skipped = copy.deepcopy(bert.model)
    set_layers(skipped, [skipped.bert.encoder.layer[1]])
    batch = _batch(bert)
    torch.testing.assert_close(_out(pruned, bert, batch), _out(skipped, bert, batch))
    with pytest.raises(ValueError, match="at least one"):
        apply_plan(copy.deepcopy(bert.model), PrunePlan(heads={0: [0, 1, 2, 3]}))


def test_compose_refers_back_to_original_indices(bert):
    shape = plan_shape(bert.model)
    first = PrunePlan(heads={0: [1]}, neurons={1: list(range(10, 128))})
    second = PrunePlan(heads={0: [1]}, neurons={1: [0, 5]}, layers=[1])  # indices of the model after `first`
    both = compose(first, second, shape)
    assert both.heads == {0: [1, 2]} and both.neurons == {1: [10, 15]} and both.layers == [1]
    step = apply_plan(apply_plan(copy.deepcopy(bert.model), first), second)
    once = apply_plan(copy.deepcopy(bert.model), both)
    for a, b in zip(step.state_dict().values(), once.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
