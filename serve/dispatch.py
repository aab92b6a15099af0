"""The task routes' hot path (pure ASGI): a JSON POST to a task endpoint answered straight from its body.

FastAPI mounts the same endpoints (they make the OpenAPI schema, and answer whatever this path passes
on), but per request it also resolves dependencies, builds its request objects and runs its
exception middlewares: about a tenth of the event loop's time. This path answers a request in
85-99 µs where the whole FastAPI path took 134-137 (a stub engine, no network). Here the body is
parsed as FastAPI parses it (``json.loads``, then the route's pydantic model), the endpoint runs,
and errors get the same status and shape as on FastAPI's path. A body sent with another
Content-Type than JSON goes on to FastAPI, which says how to fix it.

Mounted inside :class:`serve.middleware.EdgeMiddleware`, which has already checked the API key and
read the body.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from serve.errors import error_response, validation_response

if TYPE_CHECKING:
    from starlette.responses import Response

    from serve.apis.route import Route
    from serve.middleware import ASGIApp, Receive, Scope, Send


class TaskDispatch:
    """Answers ``POST`` with a JSON body to any of ``routes``; passes everything else on to ``app``."""

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.routes = {r.path: r for r in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or not _sends_json(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await _answer(route, request, await request.body())
        await response(scope, receive, send)


async def _answer(route: Route, request: Request, raw: bytes) -> Response:
    """The endpoint's response to the body ``raw``, or the error response FastAPI's path would give."""
    if not raw:
        return validation_response([{"type": "missing", "loc": ("body",)}])
    try:
        body = route.request.model_validate(json.loads(raw))
    except json.JSONDecodeError as e:
        return validation_response([{"type": "json_invalid", "loc": ("body", e.pos), "ctx": {"error": e.msg}}])
    except UnicodeDecodeError:  # as FastAPI answers a body it cannot decode
        return error_response(request, HTTPException(400, "There was an error parsing the body"))
    except ValidationError as e:
        return validation_response(e.errors(include_url=False))
    try:
        return await route.endpoint(body, request)
    except Exception as e:
        return error_response(request, e)


def _sends_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False
