"""/v1/token-classify, /v1/rerank and /v1/score on a trained multi-head artifact, through the app and a real
engine (no network): answers as the PyTorch model that `compress train` wrote, batched by the engine."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
import torch

from serve.app import build_app
from serve.config import Settings
from tests.conftest import SENTENCES

QUERY = "market bank profit"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(served model, trained PyTorch model, its tokenizer) of a tiny BERT with mlm, verbs and rr heads."""
    from compress.catalog import ModelEntry
    from compress.train.store import load_trained
    from serve.models import prepare_model
    from tests.compress.train.conftest import build_trained

    tmp = tmp_path_factory.mktemp("heads")
    model_dir, art = build_trained(tmp, {"verbs": "token-classification", "rr": "rerank", "mlm": "mlm"})
    entry = ModelEntry(name="tt", source=str(model_dir), artifact=str(art),
                       heads=[{"name": "mlm"}, {"name": "verbs"}, {"name": "rr"}],
                       serve={"threads": 1, "max_batch_size": 16, "batch_timeout": 0.05, "max_items": 8,
                              "prompts": {"query": "query: "}})
    served = prepare_model(entry, tmp, compress_missing=False)
    model, tok, _ = load_trained(model_dir)
    return served, model.eval(), tok


async def _request(app: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(raw)).encode())],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def _serve(served: Any, calls: list[tuple[str, str, Any]]) -> list[tuple[int, Any]]:
    """Each (method, path, body) answered by the app over a started engine, all at once."""
    from tests.serve.engine.test_engine import _started

    async def run() -> list[tuple[int, Any]]:
        engine, recorders = await _started(served)
        try:
            app = build_app(engine, Settings())
            answers = await asyncio.gather(*(_request(app, m, p, b) for m, p, b in calls))
            return [*answers, (0, recorders["tt"])]
        finally:
            await engine.stop()

    return asyncio.run(run())


def _torch_head(model: Any, tok: Any, name: str, first: list[str], second: list[str] | None = None) -> np.ndarray:
    batch = dict(tok(first, second, padding=True, return_tensors="pt"))
    with torch.no_grad():
        hidden = model.encode(batch)[0]
        return model.head(name, hidden, batch["attention_mask"]).numpy()


def test_token_classify_answers_as_the_trained_model(trained):
    served, model, tok = trained
    texts = ["the market is profitable", SENTENCES[3], "clubs win"]
    answers = _serve(served, [
        ("POST", "/v1/token-classify", {"model": "tt:verbs", "inputs": texts, "ignore_labels": []}),
        ("POST", "/v1/token-classify", {"inputs": texts[0], "aggregation_strategy": "first"})])
    (status, body), (status_first, first) = answers[0], answers[1]
    assert status == 200 and status_first == 200
    labels = served.view("verbs").labels
    for text, result in zip(texts, body["results"], strict=True):
        enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        logits = _torch_head(model, tok, "verbs", [text])[0]
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        real = [i for i, s in enumerate(enc["special_tokens_mask"]) if not s]
        got = result["entities"]
        assert [e["index"] for e in got] == real
        assert [e["label"] for e in got] == [labels[int(probs[i].argmax())] for i in real]
        np.testing.assert_allclose([e["score"] for e in got], [probs[i].max() for i in real], atol=1e-4)
        assert [(e["start"], e["end"]) for e in got] == [tuple(enc["offset_mapping"][i]) for i in real]
        assert all(text[e["start"]:e["end"]] == e["text"] for e in got)
    assert all("index" not in e or e["index"] is None for e in first["results"][0]["entities"])


def test_rerank_and_score_answer_as_the_trained_cross_encoder(trained):
    served, model, tok = trained
    docs = SENTENCES[:5]
    logits = _torch_head(model, tok, "rr", [QUERY] * len(docs), docs)[:, 0]
    sig = 1 / (1 + np.exp(-logits))
    order = list(np.argsort(-logits, kind="stable"))
    answers = _serve(served, [
        ("POST", "/v1/rerank", {"model": "tt:rr", "query": QUERY, "documents": docs, "top_n": 3,
                                "return_documents": True}),
        ("POST", "/v1/rerank", {"query": QUERY, "texts": docs, "raw_scores": True, "return_text": True}),
        ("POST", "/v1/score", {"text_1": QUERY, "text_2": docs}),
        ("POST", "/v1/score", {"text_1": [QUERY, "the club"], "text_2": docs[:2]}),
        ("POST", "/v1/score", {"text_1": [QUERY, "the club", "a film"], "text_2": docs[:4]})])  # 12 > max_items
    (s1, cohere), (s2, tei), (s3, score), (s4, zipped), (s5, crossed), (_, recorder) = answers
    assert (s1, s2, s3, s4, s5) == (200, 200, 200, 200, 200)
    assert [r["index"] for r in cohere["results"]] == order[:3]
    np.testing.assert_allclose([r["relevance_score"] for r in cohere["results"]], sig[order[:3]], atol=1e-4)
    assert [r["document"]["text"] for r in cohere["results"]] == [docs[i] for i in order[:3]]
    assert [r["index"] for r in tei] == order and [r["text"] for r in tei] == [docs[i] for i in order]
    np.testing.assert_allclose([r["score"] for r in tei], logits[order], atol=1e-4)
    np.testing.assert_allclose([d["score"] for d in score["data"]], sig, atol=1e-4)
    want = _torch_head(model, tok, "rr", [QUERY, "the club"], docs[:2])[:, 0]
    np.testing.assert_allclose([d["score"] for d in zipped["data"]], 1 / (1 + np.exp(-want)), atol=1e-4)
    rows = [q for q in (QUERY, "the club", "a film") for _ in range(4)]
    want = _torch_head(model, tok, "rr", rows, docs[:4] * 3)[:, 0]
    np.testing.assert_allclose([d["score"] for d in crossed["data"]], 1 / (1 + np.exp(-want)), atol=1e-4)
    assert len(recorder.shapes) < 6, "the requests shared forward passes"  # 5 requests, one in two passes


def test_a_pairs_prompt_goes_before_the_query_alone(trained):
    served, _, _ = trained
    docs = SENTENCES[:2]
    answers = _serve(served, [
        ("POST", "/v1/score", {"text_1": QUERY, "text_2": docs, "prompt_name": "query"}),
        ("POST", "/v1/score", {"text_1": "query: " + QUERY, "text_2": docs}),
        ("POST", "/v1/rerank", {"query": QUERY, "documents": docs, "prompt_name": "query"}),
        ("POST", "/v1/score", {"text_1": QUERY, "text_2": docs, "prompt_name": "passage"})])
    (s1, prompted), (s2, by_hand), (s3, ranked), (s4, unknown), _ = answers
    assert (s1, s2, s3, s4) == (200, 200, 200, 400) and unknown["error"]["param"] == "prompt_name"
    assert prompted == by_hand
    assert {r["index"]: r["relevance_score"] for r in ranked["results"]} == {d["index"]: d["score"]
                                                                             for d in prompted["data"]}


BAD = [
    ("/v1/rerank", {"query": QUERY}, "documents"),
    ("/v1/rerank", {"query": QUERY, "documents": ["a"], "texts": ["b"]}, "one of them"),
    ("/v1/rerank", {"query": QUERY, "documents": ["a [SEP] b"]}, "separator"),
    ("/v1/rerank", {"query": QUERY, "documents": ["a"] * 9}, "at most 8"),
    ("/v1/score", {"text_1": ["a"] * 9, "text_2": "b"}, "at most 8"),
    ("/v1/token-classify", {"inputs": "a", "aggregation_strategy": "longest"}, "aggregation_strategy"),
    ("/v1/rerank", {"model": "tt:verbs", "query": QUERY, "documents": ["a"]}, "tt:rr"),
]


def test_bad_requests_get_the_error_shape_with_the_fix(trained):
    served, _, _ = trained
    answers = _serve(served, [("POST", path, body) for path, body, _ in BAD])
    for (path, _, fix), (status, body) in zip(BAD, answers, strict=False):
        assert status in (404, 422) and fix in body["error"]["message"], (path, body)


def test_models_lists_the_heads_with_their_endpoints(trained):
    served, _, _ = trained
    (status, body), _ = _serve(served, [("GET", "/v1/models", None)])
    endpoints = {m["id"]: m["endpoint"] for m in body["data"]}
    assert status == 200 and endpoints == {"tt": "/v1/fill-mask", "tt:verbs": "/v1/token-classify",
                                           "tt:rr": "/v1/rerank"}
