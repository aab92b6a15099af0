from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.data import encode, mask_tokens
from compress.export import TaskGraph, export_onnx
from compress.runtime import OnnxRunner, TorchRunner
from compress.sources import load_model
from compress.tasks import FAMILIES
from tests.conftest import SENTENCES

WITH_TOKEN_TYPES = ("bert", "electra", "albert")


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_only_head_equals_full_logits(tiny, family):
    loaded = load_model(str(tiny(family, "fill-mask")))
    assert loaded.task == "fill-mask"  # read off the weights
    tok = loaded.tokenizer
    enc, _ = mask_tokens(encode(tok, SENTENCES[:6], 64), tok, rate=0.3)
    graph = TaskGraph(loaded.model, "fill-mask", mask_token_id=tok.mask_token_id)
    assert graph.head is not None  # the fast path, not the fallback
    ids = torch.from_numpy(enc["input_ids"])
    am = torch.from_numpy(enc["attention_mask"])
    with torch.no_grad():
        out = graph(ids, am)
        full = loaded.model(input_ids=ids, attention_mask=am).logits
    pos = out["mask_positions"]
    assert len(pos) == int((ids == tok.mask_token_id).sum())
    torch.testing.assert_close(out["mask_logits"], full[pos[:, 0], pos[:, 1]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("task", ["fill-mask", "classification", "embedding"])
@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_matches_torch_with_dynamic_shapes(tiny, tmp_path, family, task):
    """Every family x task: the task is read off the saved weights, and the ONNX graph equals torch."""
    loaded = load_model(str(tiny(family, task)))
    assert loaded.task == task
    tok = loaded.tokenizer
    graph = TaskGraph(loaded.model, task, mask_token_id=tok.mask_token_id, pooling="mean")
    info = export_onnx(graph, tmp_path / "m.onnx")
    assert info["opset"] >= 14
    expected_inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if family in WITH_TOKEN_TYPES else [])
    assert info["inputs"] == expected_inputs
    onnx_run = OnnxRunner(tmp_path / "m.onnx", threads=1)
    torch_run = TorchRunner(graph, info["inputs"])
    for n in (1, 5):  # two batch sizes and sequence lengths through one graph
        enc = encode(tok, SENTENCES[n:n + n], 64)
        if task == "fill-mask":
            enc, _ = mask_tokens(enc, tok)
        a, b = onnx_run(enc), torch_run(enc)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], atol=1e-4, rtol=1e-4)
