"""``POST /v1/fill-mask``: the most likely tokens at each mask of each input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, ConfigDict, Field

from serve.apis.base import TaskAPI, TaskSpec
from serve.apis.schemas import Inputs, ModelName, Usage, usage
from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.models import ModelSpec, ServedModel


class FillMaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "antiberty", "inputs": "EVQLVESGGGLVQPGG[MASK]LRLSCAAS", "top_k": 5}]})
    inputs: Inputs
    model: ModelName = None
    top_k: int = Field(5, ge=1, le=50, description="candidates per mask (at most the vocabulary size)")


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


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities) of the ``k`` most likely tokens of each row, most likely first."""
    k = min(k, logits.shape[-1])
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=-1, keepdims=True)
    idx = np.argpartition(-probs, k - 1, axis=-1)[:, :k]
    part = np.take_along_axis(probs, idx, axis=-1)
    order = np.argsort(-part, axis=-1, kind="stable")
    return np.take_along_axis(idx, order, axis=-1), np.take_along_axis(part, order, axis=-1)


class FillMaskAPI(TaskAPI):
    task = "fill-mask"

    def split_rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], spec: ModelSpec) -> list[Any]:
        logits, positions, mask_id = out["mask_logits"], out["mask_positions"], int(spec.mask_id or 0)
        rows = [logits[positions[:, 0] == r] for r in range(len(seqs))]
        for r, (seq, row) in enumerate(zip(seqs, rows, strict=True)):
            if len(row) != seq.count(mask_id):
                raise RuntimeError(f"row {r}: the graph returned {len(row)} mask predictions for "
                                   f"{seq.count(mask_id)} masks")
        return rows

    def finish(self, row: np.ndarray, payload: dict[str, Any]) -> dict[str, list]:
        ids, scores = top_k(row, payload["top_k"])
        return {"ids": ids.tolist(), "scores": scores.tolist()}


def _fill(parts: list[str], fills: list[str]) -> str:
    return "".join(p + f for p, f in zip(parts, [*fills, ""], strict=True))


class FillMaskSpec(TaskSpec):
    task = "fill-mask"
    paths = ("/v1/fill-mask",)

    def routes(self) -> list[tuple[str, Any, type, str]]:
        return [(self.paths[0], self.fill_mask, FillMaskResponse, "Predict the tokens at the mask positions")]

    async def fill_mask(self, body: FillMaskRequest, request: Request) -> FillMaskResponse:
        model = self.pick(body.model, request)
        texts = self.as_list(body.inputs)
        ids = self.encode_pre(model, texts)
        mask_id = model.spec.mask_id
        for i, seq in enumerate(ids):
            if mask_id not in seq:
                raise ServeError("invalid_request", f"inputs[{i}] has no {model.mask_token} token; put "
                                 f"{model.mask_token} where a token should be predicted", "inputs")
        out = await self.submit(request, {"model": model.name, "ids": ids, "top_k": body.top_k})
        results = [self._result(model, text, seq, item) for text, seq, item in zip(texts, ids, out["items"],
                                                                                      strict=True)]
        return FillMaskResponse(model=model.name, results=results, usage=usage(ids))

    @staticmethod
    def _result(model: ServedModel, text: str, seq: list[int], item: dict[str, list]) -> FillMaskResult:
        mask = model.mask_token or ""
        fills = [model.token_text(cands[0]) for cands in item["ids"]]
        parts = text.split(mask)
        if len(parts) - 1 == len(fills):
            def filled(only: int | None) -> str:
                return _fill(parts, [f if only is None or j == only else mask for j, f in enumerate(fills)])
        else:  # the mask token's text and its tokens disagree (e.g. normalisation): rebuild from ids
            positions = [p for p, t in enumerate(seq) if t == model.spec.mask_id]

            def filled(only: int | None) -> str:
                new = list(seq)
                for j, p in enumerate(positions):
                    if only is None or j == only:
                        new[p] = item["ids"][j][0]
                return model.tokenizer.decode(new, skip_special_tokens=True)
        masks = [MaskPrediction(tokens=[model.token_text(t) for t in cands], ids=cands, scores=scores,
                                sequence=filled(j))
                 for j, (cands, scores) in enumerate(zip(item["ids"], item["scores"], strict=True))]
        return FillMaskResult(sequence=filled(None), masks=masks)
