"""``POST /v1/classify``: label scores for each input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, ConfigDict, Field

from serve.apis.base import TaskAPI, TaskSpec
from serve.apis.schemas import Inputs, ModelName, Usage, usage

if TYPE_CHECKING:
    from serve.models import ModelSpec


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "antiberty-species", "inputs": "EVQLVESGGGLVQPGGSLRLSCAAS", "top_k": 3}]})
    inputs: Inputs
    model: ModelName = None
    top_k: int | None = Field(None, ge=1, le=10_000, description="labels per input (default: all), most likely "
                              "first")


class ClassifyResult(BaseModel):
    labels: list[str] = Field(description="labels from the model's id2label, most likely first")
    scores: list[float] = Field(description="softmax probabilities")


class ClassifyResponse(BaseModel):
    model: str
    results: list[ClassifyResult] = Field(description="one entry per input, in input order")
    usage: Usage


class ClassifyAPI(TaskAPI):
    task = "classification"

    def split_rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], spec: ModelSpec) -> list[Any]:
        logits = out["logits"].astype(np.float64)
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return list(z / z.sum(axis=-1, keepdims=True))


class ClassifySpec(TaskSpec):
    task = "classification"
    paths = ("/v1/classify",)

    def routes(self) -> list[tuple[str, Any, type, str]]:
        return [(self.paths[0], self.classify, ClassifyResponse, "Score the model's labels for each input")]

    async def classify(self, body: ClassifyRequest, request: Request) -> ClassifyResponse:
        model = self.pick(body.model, request)
        texts = self.as_list(body.inputs)
        ids = self.encode_pre(model, texts)
        out = await self.submit(request, {"model": model.name, "ids": ids})
        results = []
        for probs in out["items"]:
            labels = model.labels or [f"LABEL_{i}" for i in range(len(probs))]
            order = np.argsort(-probs, kind="stable")[: body.top_k]
            results.append(ClassifyResult(labels=[labels[i] for i in order], scores=probs[order].tolist()))
        return ClassifyResponse(model=model.name, results=results, usage=usage(ids))
