"""``POST /v1/classify``: label scores for each input."""

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
    PromptName,
    RequestModel,
    Usage,
    answer_inputs,
)

if TYPE_CHECKING:
    from serve.engine import AppEngine


class ClassifyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "antiberty:species", "inputs": "EVQLVESGGGLVQPGGSLRLSCAAS", "top_k": 3}]})
    inputs: Inputs
    model: ModelName = None
    top_k: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER] | None = Field(None, description="labels per "
                                                                                "input (default: all), most likely "
                                                                                "first")
    prompt_name: PromptName = None


class ClassifyResult(BaseModel):
    labels: list[str] = Field(description="labels from the model's id2label, most likely first")
    scores: list[float] = Field(description="softmax probabilities")


class ClassifyResponse(BaseModel):
    model: str
    results: list[ClassifyResult] = Field(description="one entry per input, in input order")
    usage: Usage


def routes(engine: AppEngine) -> list[Route]:
    async def classify(body: ClassifyRequest, request: Request) -> Response:
        params = {"top_k": body.top_k, "prompt_name": body.prompt_name}
        return await answer_inputs(engine, "classification", body, params, request, ClassifyResponse)

    return [Route("/v1/classify", classify, ClassifyRequest, ClassifyResponse,
                  "Score the model's labels for each input", "classification")]
