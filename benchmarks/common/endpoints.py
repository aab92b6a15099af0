"""The served API as the benchmarks call it: the route of each task and the body of one request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ENDPOINTS = {"embedding": "/v1/embeddings", "fill-mask": "/v1/fill-mask", "classification": "/v1/classify",
             "token-classification": "/v1/token-classify", "rerank": "/v1/rerank",
             "sparse-embedding": "/v1/embed-sparse"}
Item = str | tuple[str, str]  # one input: a text, or a (query, passage) pair for rerank


def request_body(task: str, model: str, item: Item | Sequence[Item]) -> dict[str, Any]:
    """One request of ``task`` (serve/apis); rerank: one query and its passages (a pair, or pairs of one query)."""
    if task == "rerank":
        pairs = [p for p in (item if isinstance(item, list) else [item]) if isinstance(p, tuple)]
        return {"model": model, "query": pairs[0][0], "documents": [p for _, p in pairs]}
    return {"model": model, "input": item} if task == "embedding" else {"model": model, "inputs": item}
