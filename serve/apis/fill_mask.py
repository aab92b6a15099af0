"""``POST /v1/fill-mask``: the most likely tokens at each mask of each input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, ConfigDict, Field
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


class FillMaskRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "antiberty", "inputs": "EVQLVESGGGLVQPGG[MASK]LRLSCAAS", "top_k": 5}]})
    inputs: Inputs
    model: ModelName = None
    top_k: Annotated[int, Field(ge=1, le=50), JSON_INTEGER] = Field(5, description="candidates per mask (at most "
                                                                     "the vocabulary size)")


class MaskPrediction(BaseModel):
    tokens: list[str] = Field(description="candidate tokens, most likely first")
    ids: list[int]
    scores: list[float] = Field(description="softmax probabilities")
    sequence: str = Field(description="the input with this mask filled by its top token")


class FillMaskResult(BaseModel):
    sequence: str = Field(description="the input with every mask filled by its top token")
    masks: list[MaskPrediction] = Field(description="one entry per mask, in input order")


class FillMaskResponse(BaseModel):
    model: str
    results: list[FillMaskResult] = Field(description="one entry per input, in input order")
    usage: Usage


def routes(engine: AppEngine) -> list[Route]:
    async def fill_mask(body: FillMaskRequest, request: Request) -> Response:
        return await answer_inputs(engine, "fill-mask", body, {"top_k": body.top_k}, request, FillMaskResponse)

    return [Route("/v1/fill-mask", fill_mask, FillMaskRequest, FillMaskResponse,
                  "Predict the tokens at the mask positions", "fill-mask")]
