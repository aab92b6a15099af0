"""Request and response pieces shared by the endpoints (pydantic, validated at the edge)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.responses import Response

if TYPE_CHECKING:
    from starlette.requests import Request

    from serve.engine import AppEngine

Text = Annotated[str, Field(min_length=1)]
# a character that is not blank by either regex dialect: Python's \s also takes \x1c-\x1f and \x85,
# JSON Schema's (ECMA 262) also \ufeff; the schema and check_texts use this one pattern
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"


def check_texts(value: Any) -> Any:
    """Reject what is not a non-empty string or a non-empty list of non-empty strings, saying why."""
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        if not value:
            raise ValueError("must not be an empty list; send a string or a list of strings")
        items = value
    else:
        raise ValueError(f"must be a string or a list of strings, not {type(value).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"item {i} is {type(item).__name__}, not a string")
        if not re.search(NOT_BLANK, item):
            raise ValueError(f"item {i} is empty; send some text")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"item {i} is not valid UTF-8 text (it holds a lone surrogate); send plain UTF-8 "
                             "text") from None
    return value


Inputs = Annotated[
    Text | Annotated[list[Text], Field(min_length=1)],
    BeforeValidator(check_texts),
    Field(description="one text, or a list of texts (at most the model's max_items)"),
]
ModelName = Annotated[str | None, Field(None, max_length=256, description="a served model's name; may be left out "
                                        "when the endpoint serves one model")]


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema reads one: a number without a fraction (``5.0`` too), never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be an integer, not {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"must be a whole number, not {value}")
        return int(value)
    return value


# After a field's limits, which then stay limits of the integer in the JSON schema:
# ``Annotated[int, Field(ge=1), JSON_INTEGER]``.
JSON_INTEGER = BeforeValidator(_json_integer)
PromptName = Annotated[str | None, Field(None, max_length=256, description="a prompt of the model's models.yaml "
                                         "serve.prompts, put before each input (e.g. query); 400 if it has none "
                                         "of that name")]


class RequestModel(BaseModel):
    """A request body: unknown fields refused, and no coercion (``"5"`` is not an integer, ``0`` not a boolean),
    so the body is valid exactly when the schema says it is."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Usage(BaseModel):
    prompt_tokens: int = Field(description="tokens in the inputs, special tokens included")
    total_tokens: int


def usage(ids: list[list[int]]) -> Usage:
    n = sum(len(s) for s in ids)
    return Usage(prompt_tokens=n, total_tokens=n)


def as_list(inputs: str | list[str]) -> list[str]:
    return [inputs] if isinstance(inputs, str) else list(inputs)


def client_of(request: Request) -> Hashable | None:
    """Who asks, for admission: the key serve.middleware.EdgeMiddleware put in the scope (None: unknown)."""
    return request.scope.get("state", {}).get("client")


VERSION_HEADER = "X-Model-Version"


def json_response(body: BaseModel, version: str | None) -> Response:
    """``body`` serialized by pydantic (no second validation pass), with the artifact version header if given."""
    headers = {VERSION_HEADER: version} if version is not None else None
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)


async def answer_inputs(engine: AppEngine, task: str, body: Any, params: dict[str, Any], request: Request,
                        response: type[BaseModel], field: str = "results") -> Response:
    """``body.inputs`` answered by ``task`` on ``body.model``, as ``response`` (its ``field``: one answer per
    input), with the artifact version header."""
    answer = await engine.infer(task, body.model, as_list(body.inputs), params, path=request.scope["path"],
                                client=client_of(request))
    out = response(model=answer.model, **{field: answer.results}, usage=usage(answer.ids))
    return json_response(out, answer.version)
