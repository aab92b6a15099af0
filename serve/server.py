"""Assemble the server: LitServe workers per task, our routes and errors on its FastAPI app, and run it."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import litserve as ls
from fastapi import Response, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse  # resolved at runtime by FastAPI (route annotations)

from serve import metrics
from serve.apis import build_apis
from serve.config import ConfigError, Settings
from serve.errors import STATUS, ServeError, error_body, install_error_handlers, responses_for
from serve.middleware import EdgeMiddleware

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serve.apis.base import TaskSpec
    from serve.models import ServedModel

log = logging.getLogger("serve")
ENDPOINT_ERRORS = ("invalid_json", "unauthorized", "model_not_found", "input_too_long", "invalid_request",
                   "server_error", "timeout")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "mlm-compress"
    task: str
    endpoint: str
    details: dict[str, Any] = Field(description="limits and how the model was compressed")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Server(ls.LitServer):
    """LitServer that remembers why it stopped (a worker that died is a failure, not a normal exit)."""

    failure: str | None = None
    _stopped = False

    def _perform_graceful_shutdown(self, manager: Any, uvicorn_workers: Any, shutdown_reason: str = "normal") -> None:
        if self._stopped:
            return
        self._stopped = True
        if shutdown_reason not in ("normal", "keyboard_interrupt"):
            self.failure = shutdown_reason
        super()._perform_graceful_shutdown(manager, uvicorn_workers, shutdown_reason)

    def stop_workers(self) -> None:
        """Terminate workers and the queue manager when start-up was cut short."""
        for proc in getattr(self, "inference_workers", []):
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        manager = getattr(self.transport_config, "manager", None)
        if manager is not None:
            manager.shutdown()


def _model_card(m: ServedModel) -> ModelCard:
    try:
        created = int(dt.datetime.fromisoformat(m.manifest.created).timestamp())
    except ValueError:
        created = 0
    info = m.describe()
    return ModelCard(id=m.name, created=created, task=m.task, endpoint=str(info["endpoint"]), details=info)


def add_routes(app: FastAPI, specs: list[TaskSpec], models: list[ServedModel], auth: bool) -> None:
    """Task routes with their response models and documented errors, then /v1/models and /metrics."""
    security = [Security(HTTPBearer(auto_error=False))] if auth else []
    for spec in specs:
        for path, endpoint, response_model, summary in spec.routes():
            app.add_api_route(path, endpoint, methods=["POST"], response_model=response_model, summary=summary,
                              tags=[spec.task], responses=responses_for(*ENDPOINT_ERRORS), dependencies=security)
    cards = {m.name: _model_card(m) for m in models}

    async def list_models() -> ModelList:
        return ModelList(data=list(cards.values()))

    async def get_model(model_id: str) -> ModelCard:
        if model_id not in cards:
            raise ServeError("model_not_found", f"model {model_id!r} is not served; served models: "
                             f"{', '.join(cards)}", "model")
        return cards[model_id]

    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(content=body, media_type=content_type)

    app.add_api_route("/v1/models", list_models, methods=["GET"], response_model=ModelList, tags=["models"],
                      summary="The served models", dependencies=security, responses=responses_for("unauthorized"))
    app.add_api_route("/v1/models/{model_id}", get_model, methods=["GET"], response_model=ModelCard, tags=["models"],
                      summary="One served model", dependencies=security,
                      responses=responses_for("unauthorized", "model_not_found"))
    app.add_api_route("/metrics", prometheus, methods=["GET"], tags=["monitoring"], summary="Prometheus metrics",
                      dependencies=security, responses=responses_for("unauthorized"))


def replace_health(server: Server) -> None:
    """/health in the one error shape: 200 once every worker has loaded and warmed up its models, else 503."""
    from litserve.utils import WorkerSetupStatus

    async def health() -> JSONResponse:
        status = dict(getattr(server, "workers_setup_status", None) or {})
        waiting = sorted(k for k, v in status.items() if v != WorkerSetupStatus.READY)
        if status and not waiting:
            return JSONResponse({"status": "ok"})
        return JSONResponse(error_body("not_ready", f"not ready: still loading {', '.join(waiting) or 'the workers'}; "
                                       "retry shortly"), status_code=STATUS["not_ready"])

    app = server.app
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != server.healthcheck_path]
    app.add_api_route(server.healthcheck_path, health, methods=["GET"], tags=["monitoring"],
                      summary="Ready once every model is loaded and warmed up", responses=responses_for("not_ready"))


def build_server(models: list[ServedModel], settings: Settings) -> Server:
    """The LitServer for ``models``: one inference worker per task that has models."""
    specs, apis = build_apis(models, settings.log_level)
    endpoints = frozenset(p for s in specs for p in s.paths) | {"/health", "/metrics", "/v1/models"}
    edge = (EdgeMiddleware, {"api_key": settings.api_key, "max_body_bytes": settings.max_body_bytes,
                             "endpoints": endpoints})
    server = Server(apis, accelerator="cpu", timeout=settings.timeout, middlewares=[edge])
    app = server.app
    app.title, app.version = "mlm-compress serve", "1"
    app.description = ("Fill-mask, classification and embeddings over compressed artifacts. Errors: "
                       '`{"error": {"message", "type", "param"}}`.')
    install_error_handlers(app)
    replace_health(server)
    add_routes(app, specs, models, auth=settings.api_key is not None)
    return server


def run(settings: Settings) -> None:
    """Prepare the models (compressing missing artifacts), start the workers, serve until stopped.

    Raises:
        ConfigError: bad configuration, or a worker failed to start or died.
    """
    from serve.config import load_entries
    from serve.models import prepare_models

    entries = load_entries(settings.config)
    models = prepare_models(entries, Path(settings.config).resolve().parent, settings.compress_missing)
    for m in models:
        log.info("serving %s (%s) at %s from %s", m.name, m.task, m.describe()["endpoint"], m.spec.artifact)
    if settings.api_key is None:
        log.warning("no API key set (SERVE_API_KEY or --api-key-file): every endpoint is open")
    server = build_server(models, settings)
    try:
        server.run(host=settings.host, port=settings.port, num_api_servers=settings.api_servers,
                   log_level=settings.log_level, generate_client_file=False, access_log=False)
    except BaseException as e:
        server.stop_workers()
        if server.failure or isinstance(e, RuntimeError):  # LitServe: a worker failed in setup, or died
            raise ConfigError(f"server stopped: {server.failure or e}; the log above says why") from None
        raise
    if server.failure:
        raise ConfigError(f"server stopped: {server.failure}; see the log above")
