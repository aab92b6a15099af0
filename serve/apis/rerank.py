"""``POST /v1/rerank`` and ``POST /v1/score``: a cross-encoder's relevance of text pairs.

``/v1/rerank`` takes either shape clients send: text-embeddings-inference's (``query``, ``texts``,
``raw_scores``, ``return_text``; answered as a list of ``{index, score, text}``) or Cohere's and Jina's
(``query``, ``documents``, ``top_n``, ``return_documents``; answered as ``{results: [{index,
relevance_score, document}]}``). ``/v1/score`` is vLLM's: ``text_1`` against each ``text_2``. Each pair is
read as two segments (query, passage), as the reranker was trained; the scores are the sigmoid of its logit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, ValidationInfo, field_validator
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


def _document_texts(value: Any) -> Any:
    """Jina's ``{"text": ...}`` documents as their text."""
    if isinstance(value, list):
        value = [v["text"] if isinstance(v, dict) and set(v) == {"text"} else v for v in value]
    return check_texts(value)


def _one_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return check_texts(value)


Documents = Annotated[list[Text], Field(min_length=1), BeforeValidator(_document_texts)]
Query = Annotated[Text, BeforeValidator(_one_text)]


def _given(field: str) -> dict[str, Any]:
    """JSON Schema for: ``field`` is sent as a list (not left out, not null)."""
    return {"required": [field], "properties": {field: {"type": "array"}}}


class RerankRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "reranker:rr", "query": "What is the capital of France?",
         "documents": ["Paris is the capital of France.", "Berlin is in Germany."], "top_n": 1}],
        "oneOf": [_given("documents"), _given("texts")]})  # the schema says what _one_list checks
    query: Query
    documents: Documents | None = Field(None, description="the passages to rank (Cohere, Jina)")
    texts: Documents | None = Field(None, validate_default=True, description="the passages to rank "
                                    "(text-embeddings-inference): the answer is then TEI's list")
    model: ModelName = None
    top_n: Annotated[int, Field(ge=1), JSON_INTEGER] | None = Field(None, description="the best this many "
                                                                     "(default: all), best first")
    return_documents: bool = Field(False, description="each result with its document")
    return_text: bool = Field(False, description="TEI: each result with its text")
    raw_scores: bool = Field(False, description="TEI: the logit instead of its sigmoid")
    prompt_name: PromptName = Field(None, description="a prompt of the model's models.yaml serve.prompts, put "
                                    "before the query (never a document); 400 if it has none of that name")

    @field_validator("texts")
    @classmethod
    def _one_list(cls, texts: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if "documents" in info.data and (info.data["documents"] is None) == (texts is None):
            raise ValueError("send the passages as documents (Cohere, Jina) or as texts (text-embeddings-inference), "
                             "one of them")
        return texts


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="the document's position in the request")
    relevance_score: float = Field(description="sigmoid of the reranker's logit, 0..1")
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    model: str
    results: list[RerankResult] = Field(description="most relevant first")
    usage: Usage


class RerankAnswer(RootModel[RerankResponse | list[TeiRank]]):
    """Cohere's shape for ``documents``, text-embeddings-inference's for ``texts``."""


class ScoreRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model": "reranker:rr", "text_1": "What is the capital of France?",
         "text_2": ["Paris is the capital of France.", "Berlin is in Germany."]}]})
    text_1: Inputs
    text_2: Annotated[Inputs, Field(description="one text, or a list: zipped with a text_1 list of the same "
                                    "length, else every text_1 against every text_2 (scores row by row)")]
    model: ModelName = None
    prompt_name: PromptName = Field(None, description="a prompt of the model's models.yaml serve.prompts, put "
                                    "before each text_1 (never a text_2); 400 if it has none of that name")


class ScoreData(BaseModel):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[ScoreData] = Field(description="one score per pair, in request order")
    usage: Usage


def score_pairs(text_1: str | list[str], text_2: str | list[str]) -> list[tuple[str, str]]:
    """vLLM's pairing: one text against each of the others (either side the one), or two lists of one length
    zipped; two lists of different lengths (which vLLM refuses and JSON Schema cannot forbid): every text_1
    against every text_2, row by row."""
    first, second = as_list(text_1), as_list(text_2)
    if len(first) == 1:
        return [(first[0], t) for t in second]
    if len(second) == 1:
        return [(t, second[0]) for t in first]
    if len(first) != len(second):
        return [(a, b) for a in first for b in second]
    return list(zip(first, second, strict=True))


def _ranked(scores: list[float], top_n: int | None) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])[:top_n]


def routes(engine: AppEngine) -> list[Route]:
    async def rerank(body: RerankRequest, request: Request) -> Response:
        tei = body.texts is not None
        docs = body.texts if tei else body.documents
        assert docs is not None  # checked by the request model
        param = "texts" if tei else "documents"
        params = {"pairs": True, "param": param, "prompt_name": body.prompt_name}
        answer = await engine.infer("rerank", body.model, [(body.query, d) for d in docs], params, param=param,
                                    path=request.scope["path"], client=client_of(request))
        key = "raw" if tei and body.raw_scores else "score"
        scores = [r[key] for r in answer.results]
        order = _ranked(scores, body.top_n)
        if tei:
            out = RerankAnswer([TeiRank(index=i, score=scores[i], text=docs[i] if body.return_text else None)
                                for i in order])
        else:
            out = RerankAnswer(RerankResponse(model=answer.model, usage=usage(answer.ids), results=[
                RerankResult(index=i, relevance_score=scores[i],
                             document=RerankDocument(text=docs[i]) if body.return_documents else None) for i in order]))
        return json_response(out, answer.version)

    async def score(body: ScoreRequest, request: Request) -> Response:
        # each list within max_items (as the schema says); all against all can pass it: one part after another
        step = min((v.spec.options.max_items for v in engine.served().values() if v.task == "rerank"), default=1)
        for param, side in (("text_1", body.text_1), ("text_2", body.text_2)):
            if isinstance(side, list) and len(side) > step:
                raise ServeError("invalid_request", f"{param} has {len(side)} texts; the rerank models take at most "
                                 f"{step} per list: split them over several requests", param)
        pairs = score_pairs(body.text_1, body.text_2)
        params = {"pairs": True, "param": "text_2", "prompt_name": body.prompt_name}
        answers = [await engine.infer("rerank", body.model, pairs[i:i + step], params, param="text_2",
                                      path=request.scope["path"], client=client_of(request))
                   for i in range(0, max(len(pairs), 1), step)]
        results = [r for a in answers for r in a.results]
        data = [ScoreData(index=i, score=r["score"]) for i, r in enumerate(results)]
        ids = [s for a in answers for s in a.ids]
        last = answers[-1]  # the model and version that answered the final part
        return json_response(ScoreResponse(model=last.model, data=data, usage=usage(ids)), last.version)

    return [Route("/v1/rerank", rerank, RerankRequest, RerankAnswer, "Rank documents by relevance to a query",
                  "rerank"),
            Route("/v1/score", score, ScoreRequest, ScoreResponse, "Score text pairs with a cross-encoder", "rerank")]
