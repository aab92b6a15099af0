"""The edge of every request (pure ASGI): request id, API key, body size limit, request metrics, drain,
and Retry-After enforced on clients that ask again too soon (:mod:`serve.backoff`).

Checks run before FastAPI parses anything, so an unauthenticated or oversized request costs nothing
and gets the same error shape as every other error. While the server drains, every response says
``Connection: close``, so keep-alive clients reconnect (elsewhere, once the load balancer saw
``/ready`` fail) instead of sending on a connection that is about to close.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import Any

from serve import metrics
from serve.backoff import Backoff
from serve.clients import client_key
from serve.errors import STATUS, ServeError, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/", "/health", "/ready", "/live", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
OPEN_PREFIX = "/docs/assets/"  # Swagger UI's and ReDoc's scripts (serve/page.py)


async def send_error(send: Send, kind: str, message: str, extra_headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps(error_body(kind, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *extra_headers]
    await send({"type": "http.response.start", "status": STATUS[kind], "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    """Request id (``X-Request-ID`` on every response), bearer-token auth, body limit, request metrics.

    Args:
        app: the ASGI app.
        api_key: the key clients must send as ``Authorization: Bearer KEY``; None turns auth off.
        max_body_bytes: larger bodies are answered 413.
        endpoints: paths counted under their own label in the metrics (others count as "other").
        closing: True while the server drains (responses then close their connection).
        gate: for a path and a client (:func:`serve.clients.client_key`), an error to answer at once
            without reading the request (a 429 when every model behind the path is at capacity), or None.
        retry_after_hold: the longest a 429 is held for a client that asked again before its last
            Retry-After ran out (0: never held).
        clients: whether a connection stands for one client. It does for clients that connect
            themselves; behind a proxy that pools its connections it does not (the Ray host's
            replicas). When not, no 429 is held and no client gets the queue's kept share.
            The client's key is in the scope's ``state["client"]`` for the app.
    """

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int, endpoints: frozenset[str],
                 closing: Callable[[], bool] = lambda: False,
                 gate: Callable[[str, Hashable | None], ServeError | None] = lambda path, client: None,
                 retry_after_hold: float = 2.0, clients: bool = True) -> None:
        self.app = app
        self.clients = clients
        self.backoff = Backoff(retry_after_hold) if retry_after_hold > 0 else None
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes
        self.endpoints = endpoints
        self.closing = closing
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        client = client_key(scope.get("client")) if self.clients else None
        scope.setdefault("state", {}).update(request_id=rid, client=client)
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 429 and self.backoff and not self.closing():
                    await self.backoff.refuse(client, scope.get("client"), message.get("headers", ()))
                extra = [(b"x-request-id", rid.encode())]
                if self.closing():
                    extra.append((b"connection", b"close"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        path = scope["path"]
        try:
            if self.api_key and not _open(path) and not self._authorized(scope):
                await send_error(send_with_id, "unauthorized", "missing or wrong API key; send the header "
                                 "Authorization: Bearer YOUR_KEY", ((b"www-authenticate", b"Bearer"),))
                return
            refusal = self.gate(path, client)
            if refusal is not None:
                headers = tuple((k.lower().encode(), v.encode()) for k, v in refusal.headers.items())
                await send_error(send_with_id, refusal.kind, refusal.message, headers)
                return
            body = await self._read_body(scope, receive, send_with_id)
            if body is None:
                return
            await self.app(scope, _replay(body, receive), send_with_id)
        finally:
            label = path if path in self.endpoints else "other"
            metrics.REQUESTS.labels(label, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(label).observe(time.perf_counter() - t0)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key or b"")
        return False

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once a 413 was sent (or the client went away)."""
        limit = self.max_body_bytes
        too_large = f"the request body is larger than {limit} bytes; send fewer or shorter inputs per request"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await send_error(send, "payload_too_large", too_large)
                return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(send, "payload_too_large", too_large)
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _open(path: str) -> bool:
    """Whether ``path`` is answered without the API key: probes, the schema and the pages (none holds model output)."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIX)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the buffered body over once, then waits on the client (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
