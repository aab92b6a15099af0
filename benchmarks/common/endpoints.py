"""The served API as the benchmarks call it: the route of each task and the body of one request."""

from __future__ import annotations

from typing import Any

ENDPOINTS = {"embedding": "/v1/embeddings", "fill-mask": "/v1/fill-mask", "classification": "/v1/classify"}


def request_body(task: str, model: str, text: str | list[str]) -> dict[str, Any]:
    """One request of ``task`` (serve/apis)."""
    return {"model": model, "input": text} if task == "embedding" else {"model": model, "inputs": text}
