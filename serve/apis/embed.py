"""``POST /v1/embed`` and the OpenAI-compatible ``POST /v1/embeddings``: one vector per input.

Both routes feed the same lane of the engine, so their requests batch together and each embedding
model is loaded once. ``dimensions`` cuts a Matryoshka model's vectors (the engine's embedding task
checks the size against the model and normalises the cut vector again); ``prompt_name`` puts one of
the model's prompts before each input.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from starlette.responses import Response  # resolved at runtime by FastAPI

from serve.apis.route import Route
from serve.apis.schemas import (
    JSON_INTEGER,
    Inputs,
    ModelName,
    PromptName,
    RequestModel,
    Text,
    Usage,
    as_list,
    check_texts,
    client_of,
    json_response,
    usage,
)
from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.engine import AppEngine
    from serve.engine.engine import Answer

Size = Annotated[int, Field(ge=1), JSON_INTEGER]
Dimensions = Annotated[Size | None, Field(None, description="the vector size: the model's full size, or a "
                                         "smaller one it was trained for (Matryoshka, models.yaml "
                                         "serve.matryoshka_dimensions; the cut vector is normalised again); 400 "
                                         "for any other")]


class EmbedRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "minilm", "inputs": ["A man is eating food.", "Someone is eating a meal."]}]})
    inputs: Inputs
    model: ModelName = None
    normalize: StrictBool | None = Field(None, description="unit-length vectors (default: as the model was trained)")
    dimensions: Dimensions = None
    prompt_name: PromptName = None


class EmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]] = Field(description="one vector per input, in input order")
    dimensions: int
    normalized: bool
    usage: Usage


def _openai_input(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, (int, list)) and not isinstance(v, bool)
                                                 for v in value):
        raise ValueError("token-id arrays are not supported by this server; send the text itself")
    return check_texts(value)


class OpenAIEmbeddingRequest(RequestModel):
    """The OpenAI embeddings request; unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"model": "minilm", "input": "The food was delicious.", "encoding_format": "float"}]})
    input: Annotated[Text | Annotated[list[Text], Field(min_length=1)], BeforeValidator(_openai_input)]
    model: str = Field(max_length=256)
    encoding_format: Literal["float", "base64"] = Field("float", description="base64: little-endian float32")
    dimensions: Dimensions = None
    prompt_name: PromptName = None
    user: str | None = None


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: Usage


def _check_size(answer: Answer, dimensions: int | None) -> None:
    """A size the engine could not check before the pass (the model's full size not known yet) is checked here."""
    size = len(answer.results[0])
    if dimensions is not None and dimensions != size:
        raise ServeError("unsupported", f"model {answer.model!r} cannot return {dimensions} dimensions; leave "
                         f"dimensions out for its full size {size}", "dimensions")


def _base64(vector: Any) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def routes(engine: AppEngine) -> list[Route]:
    async def embed(body: EmbedRequest, request: Request) -> Response:
        params = {"normalize": body.normalize, "dimensions": body.dimensions, "prompt_name": body.prompt_name}
        answer = await engine.infer("embedding", body.model, as_list(body.inputs), params,
                                    path=request.scope["path"], client=client_of(request))
        _check_size(answer, body.dimensions)
        model = engine.served()[answer.model]
        cut = len(answer.results[0]) < (model.dimensions or 0)
        normalized = (model.manifest.normalize or cut) if body.normalize is None else body.normalize
        response = EmbedResponse(model=answer.model, embeddings=[v.tolist() for v in answer.results],
                                 dimensions=len(answer.results[0]), normalized=normalized, usage=usage(answer.ids))
        return json_response(response, answer.version)

    async def embeddings(body: OpenAIEmbeddingRequest, request: Request) -> Response:
        params = {"normalize": None, "dimensions": body.dimensions, "prompt_name": body.prompt_name}
        answer = await engine.infer("embedding", body.model, as_list(body.input), params,
                                    param="input", path=request.scope["path"], client=client_of(request))
        _check_size(answer, body.dimensions)
        b64 = body.encoding_format == "base64"
        data = [OpenAIEmbedding(index=i, embedding=_base64(v) if b64 else v.tolist())
                for i, v in enumerate(answer.results)]
        response = OpenAIEmbeddingResponse(data=data, model=answer.model, usage=usage(answer.ids))
        return json_response(response, answer.version)

    return [Route("/v1/embed", embed, EmbedRequest, EmbedResponse, "Embed each input", "embedding"),
            Route("/v1/embeddings", embeddings, OpenAIEmbeddingRequest, OpenAIEmbeddingResponse,
                  "Embeddings, OpenAI-compatible", "embedding")]
