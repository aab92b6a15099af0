"""Pruning on tiny random models: exactly the chosen units go, the rest is untouched, the graph still
exports, and repair and distillation bring the pruned model back towards the original."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from compress.data import encode, mask_tokens
from compress.export import TaskGraph, export_onnx
from compress.prune import get_method, methods, prune_model
from compress.prune.batches import BatchStream
from compress.prune.cost import TimeCost
from compress.prune.distill import DistillConfig, distill
from compress.prune.heads import HeadsConfig
from compress.prune.importance import Importance, ScoreConfig, gates, layer_importance, unit_importance
from compress.prune.layers import LayersConfig
from compress.prune.magnitude import MagnitudeConfig, linear_weights, schedule, store_sparse, zeros_fraction
from compress.prune.model_parts import all_parts, encoder_params, head_cost, neuron_cost, set_layers
from compress.prune.neurons import NeuronsConfig
from compress.prune.objectives import LossWeights, distill_loss, run
from compress.prune.plan import PrunePlan, apply_plan, compose, plan_shape
from compress.prune.reconstruct import reconstruct
from compress.prune.structured import StructuredConfig, select
from compress.prune.workflow import prune_and_recover
from compress.runtime import OnnxRunner, TorchRunner
from compress.sources import load_model
from tests.conftest import SENTENCES

SCORING = ScoreConfig(batches=3, batch_size=8, max_length=32)


@pytest.fixture
def bert(tiny):
    """A tiny BERT fill-mask model (2 layers, hidden 64, 4 heads of 16, 128 neurons)."""
    return load_model(str(tiny("bert", "fill-mask")))


def _batch(loaded, n=6, seed=0):
    return BatchStream(loaded.task, loaded.tokenizer, SENTENCES, batch_size=n, max_length=32, seed=seed).batch(0)


def _out(model, loaded, batch):
    with torch.no_grad():
        return run(model.eval(), loaded.task, batch, pooling=loaded.pooling).main


def test_registry_lists_methods_on_a_miss():
    assert methods() == ["heads", "layers", "magnitude", "neurons", "structured"]
    with pytest.raises(ValueError, match="registered: heads, layers, magnitude, neurons, structured"):
        get_method("lottery")


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


def test_heads_method_removes_the_least_important_heads(bert):
    cfg = HeadsConfig(fraction=0.25, refit=None, scoring=SCORING)
    result = prune_model(bert, cfg, SENTENCES)
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=0)
    scores = torch.cat(unit_importance(bert.model, "fill-mask", stream.batches(3)).heads)
    lowest = sorted(torch.argsort(scores)[:2].tolist())  # 2 of 8 heads; 1 per layer is kept anyway
    assert sorted(layer * 4 + h for layer, hs in result.plan.heads.items() for h in hs) == lowest
    assert result.params_before - result.params_after == 2 * head_cost(all_parts(bert.model)[0])
    assert sum(len(r["heads_kept"]) for r in result.layers) == 6


def test_neurons_method_removes_whole_chunks_of_the_least_important(bert):
    result = prune_model(bert, NeuronsConfig(fraction=0.3, neuron_multiple=8, min_neurons=8, refit=None,
                                             scoring=SCORING), SENTENCES)
    kept = [r["neurons_kept"] for r in result.layers]
    assert sum(kept) == 256 - 72 and all(k % 8 == 0 for k in kept)  # round(0.3 * 256) = 77 -> 72
    assert result.params_before - result.params_after == 72 * neuron_cost(all_parts(bert.model)[0])
    assert all(len(r["heads_kept"]) == 4 for r in result.layers)


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


def test_speed_budget_out_of_reach_says_how_far_it_can_go(bert):
    cfg = StructuredConfig(speedup=20, seq_len=32, min_neurons=16, neuron_multiple=8, scoring=SCORING)
    with pytest.raises(ValueError, match=r"out of reach .* at most \d+\.\d+x"):
        prune_model(bert, cfg, SENTENCES)


def test_layers_method_keeps_the_layer_that_matters_more(bert):
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=0)
    loss_without = layer_importance(bert.model, "fill-mask", stream.batches(2))
    result = prune_model(bert, LayersConfig(keep=1, scoring=ScoreConfig(batches=2, batch_size=8, max_length=32)),
                         SENTENCES)
    assert result.plan.layers == [int(np.argmax(loss_without))]
    assert result.layers[1 - result.plan.layers[0]]["removed"]
    assert result.removed_fraction == pytest.approx(0.5, abs=1e-6)


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


def _kl(student, teacher, loaded, batches):
    with torch.no_grad():
        return float(np.mean([distill_loss(loaded.task, run(student, loaded.task, b), run(teacher, loaded.task, b), b,
                                           LossWeights(hidden=0, mlm=0, temperature=1))[0] for b in batches]))


def test_refit_and_distillation_bring_the_pruned_model_back(bert):
    teacher = bert.model.eval()
    with torch.no_grad():  # a random model predicts nearly uniformly; sharpen it so the KL means something
        teacher.cls.predictions.decoder.weight.mul_(30)
    plan = PrunePlan(heads={0: [0, 1], 1: [3]}, neurons={0: list(range(40)), 1: list(range(64, 128))})
    held_out = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=99).batches(3)
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=1)
    refitted = apply_plan(copy.deepcopy(teacher), plan)
    pruned_kl = _kl(refitted, teacher, bert, held_out)
    rows = reconstruct(refitted, teacher, "fill-mask", stream.batches(6))
    assert all(r["ffn_after"] < 0.5 * r["ffn_before"] for r in rows)
    assert _kl(refitted, teacher, bert, held_out) < 0.1 * pruned_kl

    distilled = apply_plan(copy.deepcopy(teacher), plan)
    cfg = DistillConfig(steps=40, lr=1e-4, log_every=20, weights=LossWeights(mlm=0))  # the teacher is random
    report = distill(distilled, teacher, "fill-mask", stream, cfg)
    assert _kl(distilled, teacher, bert, held_out) < 0.2 * pruned_kl
    assert report.last_loss < 0.5 * report.first_loss and len(report.history) == 2


def test_length_grouped_batches_hold_each_epochs_texts_once_and_pad_less(bert):
    texts = [" ".join(SENTENCES[i % len(SENTENCES)].split()[: 1 + i % 9] * (1 + i % 4)) for i in range(1003)]
    plain, grouped = (BatchStream("embedding", bert.tokenizer, texts, batch_size=8, max_length=32, seed=3,
                                  group_by_length=g) for g in (False, True))
    for epoch in range(2):  # the same texts each epoch, each once, in another order
        steps = range(epoch * plain.per_epoch, (epoch + 1) * plain.per_epoch)
        a, b = (np.concatenate([s._indices(k) for k in steps]) for s in (plain, grouped))
        assert sorted(a.tolist()) == sorted(b.tolist()) and len(set(b.tolist())) == len(b) == 1000  # 3 left over
        assert not np.array_equal(a, b)
    first = np.random.default_rng([3, 0]).permutation(len(texts))  # ungrouped: the epoch's order, as it always was
    assert all(np.array_equal(plain._indices(k), first[8 * k:8 * k + 8]) for k in range(plain.per_epoch))
    padded = [sum(s.batch(k)["input_ids"].numel() for k in range(plain.per_epoch)) for s in (plain, grouped)]
    assert padded[1] < 0.8 * padded[0]
    spread = [np.ptp(grouped.lengths[grouped._indices(k)]) for k in range(grouped.per_epoch)]
    assert np.median(spread) <= 1  # a window of 50 batches sorted by length: neighbours in length
    again = BatchStream("embedding", bert.tokenizer, texts, batch_size=8, max_length=32, seed=3, group_by_length=True)
    assert all(torch.equal(again.batch(k)["input_ids"], grouped.batch(k)["input_ids"]) for k in (0, 77, 130))
    # None groups only where that pads at least a quarter less: mixed lengths, not texts of about one length
    auto = BatchStream("embedding", bert.tokenizer, texts, batch_size=8, max_length=32, seed=3, group_by_length=None)
    assert auto.grouped and auto.padded_tokens(grouped=True) == padded[1] and auto.padded_tokens(False) == padded[0]
    even = [f"{SENTENCES[i % len(SENTENCES)].split()[0]} " + "word " * (20 + i % 3) for i in range(400)]
    flat = BatchStream("embedding", bert.tokenizer, even, batch_size=8, max_length=32, seed=3, group_by_length=None)
    assert not flat.grouped and flat.padded_tokens(grouped=True) > 0.75 * flat.padded_tokens(grouped=False)


def test_distillation_resumes_from_its_checkpoint(bert, tmp_path):
    teacher = bert.model.eval()
    plan = PrunePlan(heads={1: [0]}, neurons={0: list(range(64))})
    stream = BatchStream("fill-mask", bert.tokenizer, SENTENCES, batch_size=8, max_length=32, seed=1)
    cfg = DistillConfig(steps=6, lr=1e-3, checkpoint=str(tmp_path / "ckpt.pt"), checkpoint_every=2)

    straight = apply_plan(copy.deepcopy(teacher), plan)
    distill(straight, teacher, "fill-mask", stream, DistillConfig(steps=6, lr=1e-3))

    def interrupt(step, total):
        if step == 5:
            raise KeyboardInterrupt

    interrupted = apply_plan(copy.deepcopy(teacher), plan)
    with pytest.raises(KeyboardInterrupt):
        distill(interrupted, teacher, "fill-mask", stream, cfg, on_step=interrupt)
    resumed = apply_plan(copy.deepcopy(teacher), plan)
    lines = []
    report = distill(resumed, teacher, "fill-mask", stream, cfg, progress=lines.append)
    assert report.resumed_from == 4 and "resuming recovery from step 4/6" in lines[0]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="other recovery settings"):
        distill(resumed, teacher, "fill-mask", stream, DistillConfig(steps=6, lr=5e-4, checkpoint=cfg.checkpoint))


def test_prune_and_recover_records_and_resumes(bert, tmp_path):
    cfg = StructuredConfig(fraction=0.3, min_neurons=16, neuron_multiple=8, rounds=1, scoring=SCORING)
    recover = DistillConfig(steps=4, batch_size=8, max_length=32, checkpoint=str(tmp_path / "ck.pt"))
    pruned, record = prune_and_recover(bert, cfg, SENTENCES, recover, validate_texts=SENTENCES[:16])
    assert record["removed_fraction"] >= 0.3 and record["recovery"]["steps"] == 4
    assert set(record["validation"]) == {"pruned", "recovered"}
    assert 0 <= record["validation"]["recovered"]["top1_agreement"] <= 1
    assert [r["layer"] for r in record["layers"]] == [0, 1] and "pruned (structured)" in pruned.notes[-1]
    assert bert.model is not pruned.model and encoder_params(bert.model) == record["encoder_params_before"]
    lines = []
    again, record2 = prune_and_recover(bert, cfg, SENTENCES, recover, progress=lines.append)
    assert any("rebuilding the pruned model from checkpoint" in m for m in lines)
    assert record2["plan"] == record["plan"]
    for a, b in zip(pruned.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_magnitude_zeros_the_smallest_weights_and_stores_them_sparsely(bert, tmp_path):
    result = prune_model(bert, MagnitudeConfig(sparsity=0.8, gradual=False), SENTENCES)
    assert zeros_fraction(result.model) == pytest.approx(0.8, abs=1e-3)
    smallest_kept = min(float(w[w != 0].abs().min()) for w in linear_weights(result.model))
    largest_dropped = max(float(w.abs()[(w == 0) & (o != 0)].max())
                          for w, o in zip(linear_weights(result.model), linear_weights(bert.model), strict=True))
    assert largest_dropped <= smallest_kept
    assert result.plan is None and result.record()["speed_note"].startswith("zeros in dense matrices")
    cfg = MagnitudeConfig(sparsity=0.8, initial_sparsity=0.2, ramp=0.5)
    assert [round(schedule(s, 10, cfg), 4) for s in (0, 5, 10)] == [0.2, 0.8, 0.8]
    graph = TaskGraph(result.model, "fill-mask", mask_token_id=bert.tokenizer.mask_token_id)
    export_onnx(graph, tmp_path / "dense.onnx")
    details = store_sparse(tmp_path / "dense.onnx", tmp_path / "sparse.onnx")
    assert details["sparse_initializers"] >= 8  # the encoder's linear weights, at least
    assert (tmp_path / "sparse.onnx").stat().st_size < 0.75 * (tmp_path / "dense.onnx").stat().st_size
    enc, _ = mask_tokens(encode(bert.tokenizer, SENTENCES[:4], 32), bert.tokenizer)
    a = OnnxRunner(tmp_path / "sparse.onnx", threads=1)(enc)
    b = OnnxRunner(tmp_path / "dense.onnx", threads=1)(enc)
    np.testing.assert_allclose(a["mask_logits"], b["mask_logits"], atol=1e-5)


def test_gradual_magnitude_reaches_its_sparsity_through_recovery(bert):
    cfg = MagnitudeConfig(sparsity=0.6, initial_sparsity=0.2)
    seen = []
    result = prune_model(bert, cfg, SENTENCES)
    assert zeros_fraction(result.model) == pytest.approx(0.2, abs=1e-3)
    pruned, record = prune_and_recover(bert, cfg, SENTENCES, DistillConfig(steps=4, batch_size=8, max_length=32,
                                                                           weights=LossWeights(mlm=0)),
                                       progress=seen.append)
    assert zeros_fraction(pruned.model) == pytest.approx(0.6, abs=1e-3)
    linear = sum(w.numel() for w in linear_weights(bert.model))
    assert record["removed_fraction"] == pytest.approx(0.6 * linear / record["encoder_params_before"], abs=1e-3)
    assert record["plan"] is None and "not make dense ONNX Runtime inference faster" in pruned.notes[-1]
