"""``POST /v1/embed-sparse``: a SPLADE sparse vector per input, from a model's sparse-embedding head.

The head (compress/task_heads.py) is log(1 + relu) of the masked-LM logits, max-pooled over the input's
tokens, one weight per vocabulary entry; the answer keeps the entries above ``threshold`` (0: every
non-zero one), the ``top_k`` largest, largest first. A served model without such a head is a 400 that
says how to get one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response  # resolved at runtime by FastAPI

from serve.apis.route import Route
from serve.apis.schemas import (
    JSON_INTEGER,
    Inputs,
    ModelName,
    RequestModel,
    Usage,
    answer_inputs,
)

if TYPE_CHECKING:
    from serve.engine import AppEngine

TopK = Annotated[int, Field(ge=1), JSON_INTEGER]


class EmbedSparseRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "splade:splade", "inputs": ["what is a sparse embedding"], "top_k": 32, "return_tokens": True}]})
    inputs: Inputs
    model: ModelName = None
    top_k: Annotated[TopK | None, Field(None, description="keep the k largest terms (default: every term above "
                                        "threshold)")] = None
    threshold: float = Field(0.0, ge=0, allow_inf_nan=False, description="keep terms whose weight is above this "
                             "(default 0: every non-zero term)")
    return_tokens: StrictBool = Field(False, description="also the vocabulary entry of each term")


class SparseVector(BaseModel):
    indices: list[int] = Field(description="vocabulary ids of the kept terms, largest weight first")
    values: list[float] = Field(description="their weights, log(1 + relu(logit)) max-pooled over the tokens")
    tokens: list[str] | None = Field(None, exclude_if=lambda v: v is None,
                                     description="their vocabulary entries (only with return_tokens)")


class EmbedSparseResponse(BaseModel):
    model: str
    embeddings: list[SparseVector] = Field(description="one sparse vector per input, in input order")
    usage: Usage


def routes(engine: AppEngine) -> list[Route]:
    async def embed_sparse(body: EmbedSparseRequest, request: Request) -> Response:
        params = {"top_k": body.top_k, "threshold": body.threshold, "return_tokens": body.return_tokens}
        return await answer_inputs(engine, "sparse-embedding", body, params, request, EmbedSparseResponse,
                                   "embeddings")

    return [Route("/v1/embed-sparse", embed_sparse, EmbedSparseRequest, EmbedSparseResponse,
                  "A sparse (SPLADE) vector per input", "sparse-embedding")]
