"""One task endpoint as the app (serve/app.py) mounts it and the short path (serve/dispatch.py) runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pydantic import BaseModel
    from starlette.requests import Request
    from starlette.responses import Response


class Route(NamedTuple):
    """One task endpoint: ``POST path`` with a ``request`` body, answered by ``endpoint(body, request)``."""

    path: str
    endpoint: Callable[[Any, Request], Awaitable[Response]]
    request: type[BaseModel]
    response: type[BaseModel]
    summary: str
    task: str
