"""``POST /v1/embed`` and the OpenAI-compatible ``POST /v1/embeddings``: one vector per input.

Both routes feed the same lane of the engine, so their requests batch together and each embedding
model is loaded once.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.responses import Response  # resolved at runtime by FastAPI

from serve.apis.route import Route
from serve.apis.schemas import Inputs, ModelName, Text, Usage, as_list, check_texts, client_of, json_response, usage
from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.engine import AppEngine


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "minilm", "inputs": ["A man is eating food.", "Someone is eating a meal."]}]})
    inputs: Inputs
    model: ModelName = None
    normalize: bool | None = Field(None, description="unit-length vectors (default: as the model was trained)")


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


class OpenAIEmbeddingRequest(BaseModel):
    """The OpenAI embeddings request; unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"model": "minilm", "input": "The food was delicious.", "encoding_format": "float"}]})
    input: Annotated[Text | Annotated[list[Text], Field(min_length=1)], BeforeValidator(_openai_input)]
    model: str = Field(max_length=256)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="must equal the model's size when given")
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


def routes(engine: AppEngine) -> list[Route]:
    async def embed(body: EmbedRequest, request: Request) -> Response:
        answer = await engine.infer("embedding", body.model, as_list(body.inputs), {"normalize": body.normalize},
                                    path=request.scope["path"], client=client_of(request))
        normalized = engine.served()[answer.model].manifest.normalize if body.normalize is None else body.normalize
        response = EmbedResponse(model=answer.model, embeddings=[v.tolist() for v in answer.results],
                                 dimensions=len(answer.results[0]), normalized=normalized, usage=usage(answer.ids))
        return json_response(response, answer.version)

    async def embeddings(body: OpenAIEmbeddingRequest, request: Request) -> Response:
        answer = await engine.infer("embedding", body.model, as_list(body.input), {"normalize": None},
                                    param="input", path=request.scope["path"], client=client_of(request))
        size = len(answer.results[0])
        if body.dimensions is not None and body.dimensions != size:
            raise ServeError("invalid_request", f"model {answer.model!r} returns {size} dimensions; leave "
                             f"dimensions out or set it to {size}", "dimensions")
        b64 = body.encoding_format == "base64"
        data = [OpenAIEmbedding(index=i, embedding=base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                                if b64 else v.tolist()) for i, v in enumerate(answer.results)]
        response = OpenAIEmbeddingResponse(data=data, model=answer.model, usage=usage(answer.ids))
        return json_response(response, answer.version)

    return [Route("/v1/embed", embed, EmbedRequest, EmbedResponse, "Embed each input", "embedding"),
            Route("/v1/embeddings", embeddings, OpenAIEmbeddingRequest, OpenAIEmbeddingResponse,
                  "Embeddings, OpenAI-compatible", "embedding")]
