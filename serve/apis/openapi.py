"""``/openapi.json`` as this server serves it: the request schemas narrowed to what its models take.

The request models (pydantic) say what any server takes; a running server knows more: which models
serve each endpoint, their prompts, Matryoshka sizes, item limits, vocabularies and mask tokens. Each is
written into the schema, so a request the schema allows is one every model of the endpoint takes (where
the models differ, the schema holds what all of them take), and a client or a fuzzer reads the truth.
The schema is made once the models are warmed up (an embedding model's size is learned then).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from serve.apis.schemas import NOT_BLANK

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serve.engine import AppEngine
    from serve.models import ServedModel

ALL = None  # the tokenizer routes take every model
REQUESTS = {"FillMaskRequest": "fill-mask", "ClassifyRequest": "classification", "EmbedRequest": "embedding",
            "OpenAIEmbeddingRequest": "embedding", "TokenClassifyRequest": "token-classification",
            "RerankRequest": "rerank", "ScoreRequest": "rerank", "EmbedSparseRequest": "sparse-embedding",
            "TokenizeRequest": ALL, "DetokenizeRequest": ALL}
TEXTS = ("inputs", "input", "query", "documents", "texts", "text_1", "text_2")  # each checked by check_texts


def served_openapi(app: FastAPI, engine: AppEngine) -> Callable[[], dict[str, Any]]:
    """A replacement for ``app.openapi``: FastAPI's schema, narrowed by :func:`narrow` once the engine is ready."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        narrow(schema, engine.served())
        if engine.ready()[0]:
            app.openapi_schema = schema
        return schema

    return openapi


def narrow(schema: dict[str, Any], served: dict[str, ServedModel]) -> None:
    """Write what ``served`` takes into the request schemas of ``schema`` (in place)."""
    components = schema.get("components", {}).get("schemas", {})
    for name, task in REQUESTS.items():
        props = components.get(name, {}).get("properties")
        views = {a: v for a, v in served.items() if task is ALL or v.task == task}
        if props is None or not views:
            continue  # no model: every request is a 404, which the schema documents
        required = components[name].setdefault("required", [])
        _model(props, required, views, task is ALL)
        for field in TEXTS:
            if field in props:
                _texts(props[field], views, task == "fill-mask")
        if "prompt_name" in props:
            _choice(props, "prompt_name", set.intersection(*(set(v.spec.options.prompts) for v in views.values())))
        if "dimensions" in props:
            sizes = [set(v.embedding_sizes()) for v in views.values()]
            if all(sizes):
                _choice(props, "dimensions", set.intersection(*sizes))
        if "ids" in props:
            props["ids"]["items"]["maximum"] = min(v.tokenizer.vocab_size() for v in views.values()) - 1


def _model(props: dict[str, Any], required: list[str], views: dict[str, ServedModel], any_task: bool) -> None:
    """``model``: one of the served names; required unless the endpoint serves one model."""
    one = len({v.spec.name for v in views.values()}) == 1 if any_task else len(views) == 1
    if one:
        _choice(props, "model", set(views), nullable=True)
    else:
        props["model"] = {"type": "string", "enum": sorted(views), "title": "Model",
                          "description": "a served model's name (several serve this endpoint)"}
        if "model" not in required:
            required.append("model")


def _choice(props: dict[str, Any], field: str, values: set[Any], nullable: bool = True) -> None:
    """``field`` may be one of ``values`` (or null, as it was optional)."""
    old = props[field]
    kind = "integer" if all(isinstance(v, int) for v in values) and values else "string"
    options: list[dict[str, Any]] = [{"type": kind, "enum": sorted(values)}] if values else []
    if nullable:
        options.append({"type": "null"})
    props[field] = {"anyOf": options, **{k: old[k] for k in ("title", "description", "default") if k in old}}


def _texts(prop: dict[str, Any], views: dict[str, ServedModel], masked: bool) -> None:
    """Each text not blank (and, for fill-mask, holding a mask token); the list within ``max_items``."""
    masks = {re.escape(v.mask_token) for v in views.values() if v.mask_token}
    pattern = "|".join(sorted(masks)) if masked and masks else NOT_BLANK
    limit = min(v.spec.options.max_items for v in views.values())
    for option in prop.get("anyOf", [prop]):
        if option.get("type") == "string":
            option["pattern"] = pattern
        elif option.get("type") == "array":
            option["items"]["pattern"] = pattern
            option["maxItems"] = limit
