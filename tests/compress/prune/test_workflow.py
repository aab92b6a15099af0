"""Prune, then recover: the record, the resume from a checkpoint, gradual magnitude sparsity."""

from __future__ import annotations

import pytest
import torch

from compress.prune import prune_model
from compress.prune.distill import DistillConfig
from compress.prune.magnitude import MagnitudeConfig, linear_weights, zeros_fraction
from compress.prune.model_parts import encoder_params
from compress.prune.objectives import LossWeights
from compress.prune.structured import StructuredConfig
from compress.prune.workflow import prune_and_recover
from tests.compress.prune.conftest import SCORING
from tests.conftest import SENTENCES


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
