"""The HTTP app over an engine: task routes, model listing and reload, probes, metrics, one error shape.

Any host that runs an ASGI app mounts this one (serve/hosts/): it holds no serving logic of its own,
only the mapping from HTTP to the calls of :class:`serve.engine.AppEngine` (which
:class:`serve.engine.Engine` answers, or the Ray host's ingress by forwarding). The task routes' JSON
POSTs take a shorter path than FastAPI's own (serve/dispatch.py); FastAPI answers the rest and makes
the schema.

Probes: ``/live`` is 200 while the engine can answer (its loops run and no forward pass is stuck);
``/ready`` (and ``/health``, the same) is 200 once every model is loaded and warmed up, and 503 again
as soon as the server starts draining, so a load balancer stops sending before it stops accepting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Response, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse  # resolved at runtime by FastAPI (route annotations)

from serve import metrics
from serve.apis import task_routes
from serve.apis.openapi import served_openapi
from serve.dispatch import TaskDispatch
from serve.errors import STATUS, ServeError, error_body, install_error_handlers, responses_for
from serve.middleware import EdgeMiddleware
from serve.page import add_pages

if TYPE_CHECKING:
    from serve.config import Settings
    from serve.engine import AppEngine

ENDPOINT_ERRORS = ("invalid_json", "unsupported", "unauthorized", "model_not_found", "input_too_long",
                   "payload_too_large", "invalid_request", "overloaded", "server_error", "not_ready", "timeout")
PROBES = ("/health", "/ready", "/live")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "mlm-compress"
    task: str
    endpoint: str
    details: dict[str, Any] = Field(description="limits, queue, version and how the model was compressed")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Reloaded(BaseModel):
    id: str
    version: str = Field(description="the artifact version now served (sha256 prefix)")
    previous: str
    changed: bool


def model_card(engine: AppEngine, name: str) -> ModelCard:
    m = engine.served()[name]  # a model, or one head of a multi-head model
    try:
        created = int(dt.datetime.fromisoformat(m.manifest.created).timestamp())
    except ValueError:
        created = 0
    info = {**m.describe(), **engine.describe(m.spec.name)}
    return ModelCard(id=name, created=created, task=m.task, endpoint=str(info["endpoint"]), details=info)


def _probe(check: Callable[[], tuple[bool, str]], kind: str) -> Callable[[], Any]:
    async def probe() -> JSONResponse:
        ok, why = check()
        if ok:
            return JSONResponse({"status": "ok"})
        return JSONResponse(error_body(kind, f"not {'ready' if kind == 'not_ready' else 'live'}: {why}"),
                            status_code=STATUS[kind], headers={"Retry-After": "1"})

    return probe


def add_model_routes(app: FastAPI, engine: AppEngine, security: list) -> None:
    """/v1/models, /v1/models/{id}, POST /v1/models/{id}/reload."""
    def card(model_id: str) -> ModelCard:
        if model_id not in engine.served():
            raise ServeError("model_not_found", f"model {model_id!r} is not served; served models: "
                             f"{', '.join(engine.served())}", "model_id")
        return model_card(engine, model_id)

    async def list_models() -> ModelList:
        return ModelList(data=[model_card(engine, n) for n in engine.served()])

    async def get_model(model_id: str) -> ModelCard:
        return card(model_id)

    async def reload_model(model_id: str) -> Reloaded:
        previous = card(model_id).details["version"]
        try:
            version = await engine.reload_requested(engine.served()[model_id].spec.name)  # a head: its model
        except ServeError:
            raise
        except Exception as e:
            raise ServeError("invalid_request", f"the artifact of {model_id!r} could not be loaded ({e}); version "
                             f"{previous} keeps serving: fix or rebuild the artifact and retry", "model_id") from None
        return Reloaded(id=model_id, version=version, previous=previous, changed=version != previous)

    common: dict[str, Any] = {"tags": ["models"], "dependencies": security}
    app.add_api_route("/v1/models", list_models, methods=["GET"], response_model=ModelList, summary="The served "
                      "models", responses=responses_for("unauthorized"), **common)
    app.add_api_route("/v1/models/{model_id}", get_model, methods=["GET"], response_model=ModelCard,
                      summary="One served model", responses=responses_for("unauthorized", "model_not_found"), **common)
    app.add_api_route("/v1/models/{model_id}/reload", reload_model, methods=["POST"], response_model=Reloaded,
                      summary="Load the model's artifact again and switch to it with no failed request",
                      responses=responses_for("unauthorized", "model_not_found", "invalid_request"), **common)


def build_app(engine: AppEngine, settings: Settings, closing: Callable[[], bool] = lambda: False,
              render: Callable[[], Awaitable[tuple[bytes, str]]] | None = None, clients: bool = True) -> FastAPI:
    """The FastAPI app serving ``engine``.

    Args:
        engine: the engine (started by the host, e.g. in the app's lifespan).
        settings: API key, body limit.
        closing: True while the server drains: responses then carry ``Connection: close``.
        render: the ``/metrics`` body and content type (default: this machine's, serve.metrics.render).
        clients: whether a connection stands for one client (see :class:`serve.middleware.EdgeMiddleware`).
    """
    app = FastAPI(title="mlm-compress serve", version="2", description=(
        "Fill-mask, classification and embeddings over compressed artifacts. Errors: "
        '`{"error": {"message", "type", "param"}}`.'), docs_url=None, redoc_url=None)
    add_pages(app)  # /, /docs and /redoc with their assets served here, not from a CDN
    install_error_handlers(app)
    security = [Security(HTTPBearer(auto_error=False))] if settings.api_key else []
    routes = task_routes(engine)
    for r in routes:
        app.add_api_route(r.path, r.endpoint, methods=["POST"], response_model=r.response, summary=r.summary,
                          tags=[r.task], responses=responses_for(*ENDPOINT_ERRORS), dependencies=security)
    add_model_routes(app, engine, security)

    async def prometheus() -> Response:
        body, content_type = await render() if render else metrics.render()
        return Response(content=body, media_type=content_type)

    from prometheus_client import CONTENT_TYPE_LATEST

    app.add_api_route("/metrics", prometheus, methods=["GET"], tags=["monitoring"], summary="Prometheus metrics",
                      dependencies=security, response_class=Response, responses={
                          200: {"description": "Prometheus text format",
                                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
                          **responses_for("unauthorized")})
    for path, check, kind, summary in (
            ("/live", engine.live, "unavailable", "200 while the engine can answer"),
            ("/ready", engine.ready, "not_ready", "200 once every model is warmed up; 503 while draining"),
            ("/health", engine.ready, "not_ready", "the same as /ready")):
        app.add_api_route(path, _probe(check, kind), methods=["GET"], tags=["monitoring"], summary=summary,
                          responses=responses_for(kind))
    endpoints = frozenset(r.path for r in routes) | {"/metrics", "/v1/models", *PROBES}
    task_of = {r.path: r.task for r in routes}

    def gate(path: str, client: Hashable | None) -> ServeError | None:
        task = task_of.get(path)
        return engine.refusal(task, client) if task else None

    app.openapi = served_openapi(app, engine)  # type: ignore[method-assign]  # the schema of what is served
    app.add_middleware(TaskDispatch, routes=routes)  # inside the edge: after the key and body checks
    app.add_middleware(EdgeMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes,
                       endpoints=endpoints, closing=closing, gate=gate,
                       retry_after_hold=settings.retry_after_hold, clients=clients)
    return app
