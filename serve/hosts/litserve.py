"""The LitServe host: LitServe's HTTP server process(es), and one inference worker process per route
that runs the engine on the route's models. Every LitServe name the project uses is in this module.

A request is validated in the HTTP process (the route's pydantic model is the LitAPI's request
type), crosses LitServe's queue to the worker, where the engine admits, batches and answers it
(LitServe's async loop hands the worker every request at once; the engine does the batching), and
the response comes back the same way. Compared with the native host this costs a pickled round
trip per request and one more copy of each model per route (``/v1/embed`` and ``/v1/embeddings``
each get a worker). It has LitServe's shutdown rather than the native host's drain, and no reload
route; artifacts are still watched and swapped live by each worker's engine.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import litserve as ls
from fastapi import HTTPException, Request
from starlette.responses import JSONResponse

from serve import metrics
from serve.apis import task_routes
from serve.config import ConfigError
from serve.engine import Engine, artifact_version
from serve.engine.watch import watch_artifacts
from serve.errors import STATUS, ServeError, error_body, install_error_handlers, responses_for
from serve.middleware import EdgeMiddleware
from serve.page import add_pages

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serve.config import Settings
    from serve.models import ServedModel

log = logging.getLogger("serve")
FAILED_SHUTDOWN_SECONDS = 1.0  # after a worker died: how long the HTTP server(s) may take to stop


class RouteAPI(ls.LitAPI):
    """One route's inference worker: an engine over the models of the route's task."""

    request_model: type

    def __init__(self, path: str, models: list[ServedModel], settings: Settings) -> None:
        super().__init__(api_path=path, enable_async=True)
        self.models, self.settings = models, settings
        self._started: asyncio.Task | None = None

    def __reduce__(self) -> tuple[Any, ...]:  # the class is made per route: rebuild it in the worker process
        return (_route_api, (self.api_path, self.request_model, self.models, self.settings))

    def setup(self, device: str) -> None:
        logging.basicConfig(level=self.settings.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.engine = Engine(self.models, timeout=self.settings.timeout)
        self.engine.load()  # the worker reports ready once its models are loaded and warmed up
        self.handler = next(r.endpoint for r in task_routes(self.engine) if r.path == self.api_path)

    async def _start(self) -> None:
        await self.engine.start()
        if self.settings.watch_interval > 0:
            self._watch = asyncio.create_task(watch_artifacts(self.engine, self.settings.watch_interval))

    async def predict(self, body: Any) -> Any:
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)
        request = Request({"type": "http", "method": "POST", "path": self.api_path, "headers": [],
                           "query_string": b""})
        try:
            return await self.handler(body, request)
        except ServeError as e:  # LitServe carries HTTPExceptions (not their headers) back to the HTTP process
            raise HTTPException(e.status_code, detail={**e.body()["error"], "headers": e.headers}) from None

    async def encode_response(self, output: Any) -> Any:
        return output


def _route_api(path: str, request_model: type, models: list[ServedModel], settings: Settings) -> RouteAPI:
    """A RouteAPI whose request type (read by LitServe off ``decode_request``) is the route's pydantic model."""
    async def decode_request(self: RouteAPI, request: Any) -> Any:
        return request

    decode_request.__annotations__ = {"request": request_model, "return": Any}
    cls = type(f"{request_model.__name__}API", (RouteAPI,), {"decode_request": decode_request,
                                                              "request_model": request_model})
    return cls(path, models, settings)


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
            # a dead worker never answers the requests it held: close their connections now instead of
            # letting them hang for LitServe's 30 s wait on the HTTP server(s)
            self.uvicorn_graceful_timeout = FAILED_SHUTDOWN_SECONDS
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


def _probes(app: FastAPI, server: Server, path: str) -> None:
    """/health, /ready (workers loaded and warmed up) and /live (the server runs), in the one error shape."""
    from litserve.utils import WorkerSetupStatus

    async def ready() -> JSONResponse:
        status = dict(getattr(server, "workers_setup_status", None) or {})
        waiting = sorted(str(k) for k, v in status.items() if v != WorkerSetupStatus.READY)
        if status and not waiting:
            return JSONResponse({"status": "ok"})
        return JSONResponse(error_body("not_ready", f"not ready: still loading {', '.join(waiting) or 'the workers'}"
                                       "; retry shortly"), status_code=STATUS["not_ready"])

    async def live() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != path]
    for route, endpoint in ((path, ready), ("/ready", ready), ("/live", live)):
        app.add_api_route(route, endpoint, methods=["GET"], tags=["monitoring"], responses=responses_for("not_ready"))


def _models_routes(app: FastAPI, models: list[ServedModel]) -> None:
    """/v1/models: what is served, with each artifact's version (queues live in the workers)."""
    cards = [{"id": v.name, "object": "model", "owned_by": "mlm-compress", "task": v.task,
              "endpoint": v.describe()["endpoint"], "details": {**v.describe(),
                                                                "version": artifact_version(v.spec.artifact)}}
             for m in models for v in m.addresses().values()]

    async def list_models() -> dict:
        return {"object": "list", "data": cards}

    async def prometheus() -> Any:
        from fastapi import Response

        body, content_type = metrics.render()
        return Response(content=body, media_type=content_type)

    app.add_api_route("/v1/models", list_models, methods=["GET"], tags=["models"])
    app.add_api_route("/metrics", prometheus, methods=["GET"], tags=["monitoring"])


def serve(models: list[ServedModel], settings: Settings) -> None:
    """Serve ``models`` on LitServe until stopped.

    Raises:
        ConfigError: a worker failed to start or died.
    """
    dummy = Engine(models)  # only to list the routes and their request models
    apis = []
    for route in task_routes(dummy):
        mine = [m for m in models if any(v.task == route.task for v in m.addresses().values())]  # heads included
        if mine:
            apis.append(_route_api(route.path, route.request, mine, settings))
    paths = frozenset(a.api_path for a in apis) | {"/health", "/ready", "/live", "/metrics", "/v1/models"}
    edge = (EdgeMiddleware, {"api_key": settings.api_key, "max_body_bytes": settings.max_body_bytes,
                             "endpoints": paths, "retry_after_hold": settings.retry_after_hold})
    server = Server(apis, accelerator="cpu", timeout=settings.timeout + 5, middlewares=[edge])
    install_error_handlers(server.app)
    add_pages(server.app)  # LitServe's /docs loads Swagger UI from a CDN
    _probes(server.app, server, server.healthcheck_path)
    _models_routes(server.app, models)
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
