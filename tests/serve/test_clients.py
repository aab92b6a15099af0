"""A connection as its client (serve/clients.py), and what the edge hands on of it."""

from __future__ import annotations

import asyncio
from typing import Any

from serve.clients import client_key
from serve.middleware import EdgeMiddleware


def test_a_connection_is_a_client_unless_unknown_or_forwarded():
    assert client_key(("10.0.0.1", 5000)) == ("10.0.0.1", 5000)
    assert client_key(["10.0.0.1", 5000]) == ("10.0.0.1", 5000)  # ASGI servers may give a list
    assert client_key(("10.0.0.1", 0)) is None  # an address a proxy forwarded may stand for many clients
    assert client_key(None) is None and client_key(()) is None


def _seen(client: Any, **options: Any) -> tuple[Any, Any]:
    """What the gate and the app see as the client of one request that arrived on ``client``."""
    seen: dict[str, Any] = {}

    def gate(path: str, key: Any) -> None:
        seen["gate"] = key

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["app"] = scope["state"]["client"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    edge = EdgeMiddleware(app, api_key=None, max_body_bytes=1 << 20, endpoints=frozenset(), gate=gate, **options)
    scope = {"type": "http", "method": "POST", "path": "/v1/embed", "headers": [], "client": client}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(edge(scope, receive, send))
    return seen["gate"], seen["app"]


def test_the_edge_hands_the_client_to_the_gate_and_the_app_unless_connections_are_shared():
    assert _seen(("10.0.0.1", 5000)) == (("10.0.0.1", 5000), ("10.0.0.1", 5000))
    assert _seen(("10.0.0.1", 0)) == (None, None)
    assert _seen(("10.0.0.1", 5000), clients=False) == (None, None)  # behind a pooling proxy (the Ray host)
