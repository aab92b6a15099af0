"""``POST /v1/token-classify``: labels of each token (or word, or entity) of each input, with character offsets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response  # resolved at runtime by FastAPI

from serve.apis.route import Route
from serve.apis.schemas import Inputs, ModelName, RequestModel, Usage, answer_inputs
from serve.engine.token_groups import Strategy

if TYPE_CHECKING:
    from serve.engine import AppEngine


class TokenClassifyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "antiberty-region:region", "inputs": "EVQLVESGGGLVQPGGSLRLSCAAS", "aggregation_strategy": "simple"}]})
    inputs: Inputs
    model: ModelName = None
    aggregation_strategy: Strategy = Field("none", description="none: every token; simple: adjacent tokens of one "
                                           "label joined; first, max, average: each word's pieces made to agree "
                                           "first (transformers' TokenClassificationPipeline strategies)")
    ignore_labels: list[str] = Field(["O"], description="labels left out of the answer (default: O, as the "
                                     "pipeline does; [] for every token)")


class TokenEntity(BaseModel):
    label: str = Field(description="the label (grouped: without its B-/I- prefix)")
    score: float = Field(description="its probability (grouped: the mean over the group)")
    start: int = Field(description="offset of the first character in the input")
    end: int = Field(description="offset past the last character")
    text: str = Field(description="the input's characters start:end")
    index: int | None = Field(None, description="the token's position, special tokens counted (strategy none)")
    token: str | None = Field(None, description="the vocabulary entry (strategy none)")


class TokenClassifyResult(BaseModel):
    entities: list[TokenEntity] = Field(description="in input order")


class TokenClassifyResponse(BaseModel):
    model: str
    results: list[TokenClassifyResult] = Field(description="one entry per input, in input order")
    usage: Usage


def routes(engine: AppEngine) -> list[Route]:
    async def token_classify(body: TokenClassifyRequest, request: Request) -> Response:
        params = {"aggregation_strategy": body.aggregation_strategy, "ignore_labels": body.ignore_labels}
        return await answer_inputs(engine, "token-classification", body, params, request, TokenClassifyResponse)

    return [Route("/v1/token-classify", token_classify, TokenClassifyRequest, TokenClassifyResponse,
                  "Label each token of each input, with character offsets", "token-classification")]
