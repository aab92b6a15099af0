"""``POST /v1/embed-sparse`` against a real server (tests/serve/apis/conftest.py): the sparse vectors of the
PyTorch original, top_k/threshold/return_tokens, usage, the model listing, the schema, and a 400 for a
model without a sparse-embedding head."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SENTENCES, splade_reference

pytestmark = pytest.mark.slow
TEXTS = SENTENCES[:3]


def _post(server, **body):
    return server.client().post("/v1/embed-sparse", {"model": "sparse:splade", "inputs": TEXTS, **body})


def test_vectors_are_the_pytorch_originals(encoder_server, tmp_path_factory):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from compress.validate import top_overlap

    status, data = _post(encoder_server)
    assert status == 200, data
    assert data["model"] == "sparse:splade" and len(data["embeddings"]) == 3
    source = encoder_server.config.parent / "src-sparse"
    tok, mlm = AutoTokenizer.from_pretrained(source), AutoModelForMaskedLM.from_pretrained(source).eval()
    enc = tok(TEXTS, padding=True, return_tensors="np")
    want = splade_reference(mlm, dict(enc))
    got = np.zeros_like(want)
    for row, vector in zip(got, data["embeddings"], strict=True):
        row[vector["indices"]] = vector["values"]
        assert vector["values"] == sorted(vector["values"], reverse=True) and "tokens" not in vector
    assert top_overlap(want, got).min() >= 0.95
    np.testing.assert_allclose(got, want, atol=1e-4)
    n = int(enc["attention_mask"].sum())
    assert data["usage"] == {"prompt_tokens": n, "total_tokens": n}


def test_top_k_threshold_and_tokens(encoder_server):
    _, full = _post(encoder_server)
    status, data = _post(encoder_server, top_k=4, threshold=0.1, return_tokens=True)
    assert status == 200, data
    for whole, cut in zip(full["embeddings"], data["embeddings"], strict=True):
        kept = [(i, v) for i, v in zip(whole["indices"], whole["values"], strict=True) if v > 0.1][:4]
        assert list(zip(cut["indices"], cut["values"], strict=True)) == kept
        assert len(cut["tokens"]) == len(cut["indices"]) and all(isinstance(t, str) for t in cut["tokens"])
    status, data = _post(encoder_server, threshold=1e6)
    assert status == 200 and all(v == {"indices": [], "values": []} for v in data["embeddings"])


@pytest.mark.parametrize("body", [{"return_tokens": 1}, {"return_tokens": "true"}, {"top_k": 0}, {"top_k": "5"},
                                  {"threshold": -0.5}, {"threshold": "0"}, {"inputs": []}, {"input": "a"}])
def test_bad_requests_are_refused_in_the_one_error_shape(encoder_server, body):
    status, data = _post(encoder_server, **body)
    assert status == 422 and set(data) == {"error"} and data["error"]["type"] == "invalid_request", data


@pytest.mark.parametrize("model", ["fill", "sparse", "embed"])
def test_a_model_without_a_sparse_head_is_a_400(encoder_server, model):
    status, data = _post(encoder_server, model=model)
    assert status == 400 and data["error"]["type"] == "unsupported" and data["error"]["param"] == "model", data
    assert "has no sparse-embedding head" in data["error"]["message"]
    fix = "ask model 'sparse:splade'" if model == "sparse" else "--heads mlm,splade" if model == "fill" else "masked-LM"
    assert fix in data["error"]["message"]


def test_listed_and_described_and_fill_mask_still_served(encoder_server):
    client = encoder_server.client()
    status, models = client.get("/v1/models")
    cards = {m["id"]: m for m in models["data"]}
    assert cards["sparse:splade"]["task"] == "sparse-embedding"
    assert cards["sparse:splade"]["endpoint"] == "/v1/embed-sparse"
    _, data = _post(encoder_server)
    vocab = cards["sparse:splade"]["details"]["dimensions"]  # the vocabulary's size
    assert max(max(v["indices"]) for v in data["embeddings"]) < vocab < 2 * len(data["embeddings"][0]["indices"])
    assert cards["sparse"]["task"] == "fill-mask"
    status, data = client.post("/v1/fill-mask", {"model": "sparse", "inputs": "the [MASK] of the world"})
    assert status == 200 and len(data["results"][0]["masks"]) == 1
    status, schema = client.get("/openapi.json")
    props = schema["components"]["schemas"]["EmbedSparseRequest"]["properties"]
    assert props["model"]["anyOf"][0]["enum"] == ["sparse:splade"]
    assert "/v1/embed-sparse" in schema["paths"]
