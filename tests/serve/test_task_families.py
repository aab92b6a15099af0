"""/v1/token-classify and /v1/rerank agree with the PyTorch original on tiny random models of every family.

Each family's masked-LM gets a random token-classification head and a random rerank head (as `compress train`
writes them), is exported to an fp32 artifact and served through the app over a real engine (no network).
The reference is the transformers encoder run directly on what its tokenizer makes of each text or pair,
segment ids included where the family takes them, and the head on its output: token labels must agree on
>= 99 % of tokens, the rerank top-1 on >= 99 % of queries and Kendall's tau be >= 0.95 on average.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import numpy as np
import pytest
import torch

from compress.tasks import FAMILIES
from serve.app import build_app
from serve.config import Settings
from tests.conftest import SENTENCES, TAGS
from tests.serve.test_task_endpoints import _request

QUERIES = ["market bank profit", "the film and the music", "club team player win", "government said",
           "new company sales", "first game of the year", "people have not", "world band show"]
DOCS = SENTENCES[8:20]


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory):
    """(served model, trained PyTorch model, its tokenizer) of one family."""
    from compress.catalog import ModelEntry
    from compress.head_graph import trained_heads
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.train.store import load_trained
    from serve.models import prepare_model
    from tests.conftest import build_tiny_heads

    tmp = tmp_path_factory.mktemp(request.param)
    model_dir = build_tiny_heads(tmp, request.param)
    recipe = Recipe.model_validate({"method": "fp32", "validation": {"gate": False, "n": 16}})
    compress_model(trained_heads(model_dir), tmp / "art", name="fam", recipe=recipe, bench=False, threads=1)
    entry = ModelEntry(name="fam", source=str(model_dir), artifact=str(tmp / "art"),
                       heads=[{"name": "mlm"}, {"name": "tags"}, {"name": "rr"}],
                       serve={"threads": 1, "max_batch_size": 16, "max_items": 16, "truncate": True})
    model, tok, _ = load_trained(model_dir)
    return prepare_model(entry, tmp, compress_missing=False), model.eval(), tok


def _serve(served: Any, calls: list[tuple[str, Any]]) -> list[Any]:
    """Each POST (path, body) answered by the app over a started engine, all at once; the bodies (200 only)."""
    from tests.serve.engine.test_engine import _started

    async def run() -> list[tuple[int, Any]]:
        engine, _ = await _started(served)
        try:
            app = build_app(engine, Settings())
            return await asyncio.gather(*(_request(app, "POST", p, b) for p, b in calls))
        finally:
            await engine.stop()

    answers = asyncio.run(run())
    assert all(status == 200 for status, _ in answers), answers
    return [body for _, body in answers]


def _torch(model: Any, tok: Any, head: str, first: list[str], second: list[str] | None = None) -> tuple[Any, Any]:
    """(head output, tokenizer encoding): the encoder fed what its forward takes of the tokenizer's output."""
    enc = tok(first, second, padding=True, return_tensors="pt")
    takes = inspect.signature(model.model.base_model.forward).parameters
    with torch.no_grad():
        hidden = model.model.base_model(**{k: v for k, v in enc.items() if k in takes})[0]
        return model.head(head, hidden, enc["attention_mask"]).numpy(), enc


def test_token_labels_agree_with_pytorch(family_model):
    served, model, tok = family_model
    texts = SENTENCES[:16]
    (body,) = _serve(served, [("/v1/token-classify", {"model": "fam:tags", "inputs": texts, "ignore_labels": []})])
    logits, enc = _torch(model, tok, "tags", texts)
    agree = total = 0
    for r, result in enumerate(body["results"]):
        want = {i: TAGS[int(logits[r, i].argmax())] for i in range(logits.shape[1])
                if enc["attention_mask"][r, i] and i in [e["index"] for e in result["entities"]]}
        got = {e["index"]: e["label"] for e in result["entities"]}
        special = set(tok.all_special_tokens)
        real = [i for i, t in enumerate(enc.tokens(r)) if enc["attention_mask"][r, i] and t not in special]
        assert sorted(got) == real, "the served tokens are the input's, special tokens left out"
        agree += sum(got[i] == want[i] for i in real)
        total += len(real)
    assert agree / total >= 0.99, f"{agree}/{total} token labels agree"


def test_rerank_order_agrees_with_pytorch(family_model):
    from scipy.stats import kendalltau

    served, model, tok = family_model
    bodies = _serve(served, [("/v1/rerank", {"model": "fam:rr", "query": q, "documents": DOCS, "raw_scores": True})
                             for q in QUERIES])
    top1, taus = [], []
    for query, body in zip(QUERIES, bodies, strict=True):
        want = _torch(model, tok, "rr", [query] * len(DOCS), DOCS)[0][:, 0]
        got = np.empty(len(DOCS))
        for r in body["results"]:
            got[r["index"]] = r["relevance_score"]
        top1.append(int(got.argmax()) == int(want.argmax()))
        taus.append(kendalltau(got, want).statistic)
    assert np.mean(top1) >= 0.99 and np.mean(taus) >= 0.95, (top1, taus)


def test_a_pair_reaches_the_model_with_its_segment_ids(family_model):
    """/v1/score answers as /v1/rerank and as PyTorch on the pair with its segment ids, which change the scores
    where the family has segment types (BERT, ALBERT, ELECTRA)."""
    served, model, tok = family_model
    (ranked, scored) = _serve(served, [("/v1/rerank", {"model": "fam:rr", "query": QUERIES[0], "documents": DOCS}),
                                       ("/v1/score", {"model": "fam:rr", "text_1": QUERIES[0], "text_2": DOCS})])
    by_index = {r["index"]: r["relevance_score"] for r in ranked["results"]}
    np.testing.assert_allclose([by_index[i] for i in range(len(DOCS))], [d["score"] for d in scored["data"]],
                               atol=1e-6)
    logits, enc = _torch(model, tok, "rr", [QUERIES[0]] * len(DOCS), DOCS)
    np.testing.assert_allclose([d["score"] for d in scored["data"]], 1 / (1 + np.exp(-logits[:, 0])), atol=1e-4)
    takes = inspect.signature(model.model.base_model.forward).parameters
    # DeBERTa-v2's type_vocab_size is 0: it reads no segment ids
    typed = "token_type_ids" in takes and int(getattr(model.config, "type_vocab_size", 0) or 0) > 1
    if typed and "token_type_ids" in enc and enc["token_type_ids"].any():
        flat = dict(enc, token_type_ids=torch.zeros_like(enc["token_type_ids"]))
        with torch.no_grad():
            hidden = model.model.base_model(**{k: v for k, v in flat.items() if k in takes})[0]
            one_segment = model.head("rr", hidden, enc["attention_mask"]).numpy()[:, 0]
        assert not np.allclose(one_segment, logits[:, 0], atol=1e-3), "segment ids change this family's scores"
