"""``POST /v1/tokenize`` and ``POST /v1/detokenize``: a served model's own tokenizer, over HTTP.

What a client needs to count tokens before it sends a request (against the model's ``max_length``), see
where each token came from (character offsets), or turn ids back into text. Nothing here runs the
model: the tokenizer (serve/tokenizer.py) is called in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastapi import Request  # resolved at runtime by FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response  # resolved at runtime by FastAPI

from serve.apis.route import Route
from serve.apis.schemas import (
    JSON_INTEGER,
    Inputs,
    ModelName,
    PromptName,
    RequestModel,
    Usage,
    as_list,
    json_response,
    usage,
)
from serve.errors import ServeError

if TYPE_CHECKING:
    from serve.engine import AppEngine
    from serve.models import ServedModel


class TokenizeRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "minilm", "inputs": "A man is eating."}]})
    inputs: Inputs
    model: ModelName = None
    add_special_tokens: StrictBool = Field(True, description="the model's special tokens ([CLS], [SEP], …), as "
                                           "every task adds them")
    prompt_name: PromptName = None


class Tokens(BaseModel):
    text: str = Field(description="the text as tokenized: the prompt before it, residues spaced out (split_chars)")
    ids: list[int]
    tokens: list[str] = Field(description="each id's vocabulary entry")
    offsets: list[tuple[int, int]] = Field(description="[start, end) characters of `text` per token; (0, 0) for a "
                                           "special token")
    count: int = Field(description="tokens in all, never cut: more than the model's max_length is too long")


class TokenizeResponse(BaseModel):
    model: str
    results: list[Tokens] = Field(description="one entry per input, in input order")
    max_length: int = Field(description="the most tokens the model takes per input, special tokens included")
    truncate: bool = Field(description="whether the model cuts a longer input (else it refuses it, 413)")
    usage: Usage


TokenId = Annotated[int, Field(ge=0, le=(1 << 31) - 1), JSON_INTEGER]


class DetokenizeRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "minilm", "ids": [101, 7592, 2088, 102]}]})
    ids: list[TokenId] = Field(max_length=65536, description="token ids of the model's vocabulary")
    model: ModelName = None
    skip_special_tokens: StrictBool = Field(True, description="leave out [CLS], [SEP], [PAD], …")


class DetokenizeResponse(BaseModel):
    model: str
    text: str


def pick_model(engine: AppEngine, name: str | None) -> ServedModel:
    """The served model (or head) ``name``, or the only model when ``name`` is None.

    Raises:
        ServeError: 404 for a name not served, 422 for none when several models are.
    """
    served = engine.served()
    if name is None:
        models = {v.spec.name for v in served.values()}  # a multi-head model's heads share one tokenizer
        if len(models) == 1:
            return next(iter(served.values()))
        raise ServeError("invalid_request", f"model is required: this server serves {', '.join(served)}", "model")
    if name not in served:
        raise ServeError("model_not_found", f"model {name!r} is not served; served models: {', '.join(served)} "
                         "(GET /v1/models)", "model")
    return served[name]


def tokens_of(model: ServedModel, texts: list[str], add_special_tokens: bool, prompt: str | None) -> list[Tokens]:
    """Each text's tokens as the model's tasks tokenize it (``prompt`` first), never cut.

    Raises:
        ServeError: a text cannot be tokenized.
    """
    prepared = [model.prepared_text(t, prompt) for t in texts]
    try:
        encodings = model.tokenizer.encodings(prepared, add_special_tokens)
    except Exception as e:  # the Rust tokenizer's varied errors, as ServedModel.encode says them
        raise ServeError("invalid_request", f"inputs could not be tokenized ({type(e).__name__}); send plain UTF-8 "
                         "text", "inputs") from None
    return [Tokens(text=t, ids=e.ids, tokens=e.tokens, offsets=e.offsets, count=len(e.ids))
            for t, e in zip(prepared, encodings, strict=True)]


def routes(engine: AppEngine) -> list[Route]:
    async def tokenize(body: TokenizeRequest, request: Request) -> Response:
        model = pick_model(engine, body.model)
        texts, limit = as_list(body.inputs), model.spec.options.max_items
        if len(texts) > limit:
            raise ServeError("invalid_request", f"inputs has {len(texts)} items; model {model.name!r} takes at most "
                             f"{limit} per request: split them over several requests", "inputs")
        prompt = model.prompt(body.prompt_name)
        results = await asyncio.to_thread(tokens_of, model, texts, body.add_special_tokens, prompt)
        response = TokenizeResponse(model=model.name, results=results, max_length=model.max_length,
                                    truncate=model.spec.options.truncate, usage=usage([r.ids for r in results]))
        return json_response(response, None)

    async def detokenize(body: DetokenizeRequest, request: Request) -> Response:
        model = pick_model(engine, body.model)
        size = model.tokenizer.vocab_size()
        bad = next((i for i, t in enumerate(body.ids) if t >= size), None)
        if bad is not None:
            raise ServeError("unsupported", f"ids[{bad}] is {body.ids[bad]}; model {model.name!r} has ids "
                             f"0..{size - 1}", f"ids.{bad}")
        text = await asyncio.to_thread(model.tokenizer.decode, body.ids, body.skip_special_tokens)
        return json_response(DetokenizeResponse(model=model.name, text=text), None)

    return [Route("/v1/tokenize", tokenize, TokenizeRequest, TokenizeResponse,
                  "Token ids, tokens and character offsets of each input, as the model tokenizes it", "tokenizer"),
            Route("/v1/detokenize", detokenize, DetokenizeRequest, DetokenizeResponse,
                  "The text of token ids", "tokenizer")]
