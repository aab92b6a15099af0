"""Magnitude pruning: the smallest weights become zeros, stored sparsely in the graph."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import encode, mask_tokens
from compress.export import TaskGraph, export_onnx
from compress.prune import prune_model
from compress.prune.magnitude import MagnitudeConfig, linear_weights, schedule, store_sparse, zeros_fraction
from compress.runtime import OnnxRunner
from tests.conftest import SENTENCES


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
