"""``POST /v1/embed`` and the OpenAI-compatible ``POST /v1/embeddings``: one vector per input.

Both routes feed the same inference worker, so their requests batch together and each embedding
model is loaded once.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from serve.apis.base import TaskAPI, TaskSpec
from serve.apis.schemas import Inputs, ModelName, Text, Usage, check_texts, usage
from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.models import ModelSpec, ServedModel


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


class EmbedAPI(TaskAPI):
    task = "embedding"

    def split_rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], spec: ModelSpec) -> list[Any]:
        return list(out["sentence_embedding"].astype(np.float32))

    def finish(self, row: np.ndarray, payload: dict[str, Any]) -> np.ndarray:
        if payload["normalize"]:
            return row / max(float(np.linalg.norm(row)), 1e-12)
        return row


class EmbedSpec(TaskSpec):
    task = "embedding"
    paths = ("/v1/embed", "/v1/embeddings")

    def routes(self) -> list[tuple[str, Any, type, str]]:
        return [(self.paths[0], self.embed, EmbedResponse, "Embed each input"),
                (self.paths[1], self.embeddings, OpenAIEmbeddingResponse, "Embeddings, OpenAI-compatible")]

    async def _vectors(self, request: Request, model: ServedModel, texts: list[str], param: str,
                       normalize: bool) -> tuple[list[np.ndarray], list[list[int]]]:
        ids = self.encode_pre(model, texts, param)
        out = await self.submit(request, {"model": model.name, "ids": ids, "normalize": normalize})
        return out["items"], ids

    async def embed(self, body: EmbedRequest, request: Request) -> EmbedResponse:
        model = self.pick(body.model, request)
        normalize = model.manifest.normalize if body.normalize is None else body.normalize
        vecs, ids = await self._vectors(request, model, self.as_list(body.inputs), "inputs", normalize)
        return EmbedResponse(model=model.name, embeddings=[v.tolist() for v in vecs], dimensions=len(vecs[0]),
                             normalized=normalize, usage=usage(ids))

    async def embeddings(self, body: OpenAIEmbeddingRequest, request: Request) -> OpenAIEmbeddingResponse:
        model = self.pick(body.model, request)
        vecs, ids = await self._vectors(request, model, self.as_list(body.input), "input", model.manifest.normalize)
        if body.dimensions is not None and body.dimensions != len(vecs[0]):
            raise ServeError("invalid_request", f"model {model.name!r} returns {len(vecs[0])} dimensions; leave "
                             f"dimensions out or set it to {len(vecs[0])}", "dimensions")
        data = [OpenAIEmbedding(index=i, embedding=base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                                if body.encoding_format == "base64" else v.tolist())
                for i, v in enumerate(vecs)]
        return OpenAIEmbeddingResponse(data=data, model=model.name, usage=usage(ids))
