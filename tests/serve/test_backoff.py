"""Retry-After enforced (serve/backoff.py): a client that asks again too soon waits for its 429."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY

from serve.backoff import MAX_CLIENTS, Backoff
from serve.clients import client_key
from serve.middleware import EdgeMiddleware


class FakeTime:
    """A clock that only the sleeps move, and the sleeps asked for."""

    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def _backoff(max_hold: float = 2.0) -> tuple[Backoff, FakeTime]:
    t = FakeTime()
    return Backoff(max_hold, clock=t.clock, sleep=t.sleep), t


def _conn(host: str, port: int) -> tuple[str, int]:
    """A connection's ``scope["client"]``: a new object per connection, as the ASGI server makes it."""
    return (host, port)


def _refuse(backoff: Backoff, client: Any, retry_after: str | None = "1") -> None:
    """A 429 to the connection ``client`` (the scope's ``client``), keyed as the edge keys it."""
    headers = [(b"content-type", b"application/json")]
    if retry_after:
        headers.append((b"Retry-After", retry_after.encode()))
    asyncio.run(backoff.refuse(client_key(client), client, headers))


def test_only_a_client_that_comes_back_early_waits_and_only_for_the_rest_of_its_advice():
    backoff, t = _backoff()
    first = _conn("10.0.0.1", 5000)
    _refuse(backoff, first)  # first refusal: at once
    assert t.slept == []
    t.now += 0.25  # it asks again on the same connection after a quarter of the second it was told to wait
    _refuse(backoff, first)
    assert t.slept == [0.75]
    _refuse(backoff, _conn("10.0.0.2", 5000))  # another client, and a client of unknown address: at once
    _refuse(backoff, None)
    _refuse(backoff, None)
    forwarded = _conn("10.0.0.3", 0)  # an address a proxy forwarded may stand for many clients: never held
    _refuse(backoff, forwarded)
    _refuse(backoff, forwarded)
    assert t.slept == [0.75]
    t.now += 1.01  # the first client waited as told (the advice ran from its held 429 on)
    _refuse(backoff, first)
    assert t.slept == [0.75]
    listed = ["10.0.0.4", 6000]  # ASGI servers may give the address as a list
    _refuse(backoff, listed)
    _refuse(backoff, listed)
    assert t.slept == [0.75, 1.0]


def test_a_new_connection_from_an_advised_address_and_port_is_not_held():
    """On loopback a closed connection's port goes to the next connection at once, most often another client's."""
    backoff, t = _backoff()
    _refuse(backoff, _conn("127.0.0.1", 40000))
    _refuse(backoff, _conn("127.0.0.1", 40000))  # equal address and port, a new connection: at once
    assert t.slept == []
    again = _conn("127.0.0.1", 40000)  # a connection is held on its own advice
    _refuse(backoff, again)
    assert t.slept == []
    _refuse(backoff, again)
    assert t.slept == [1.0]


def test_the_hold_is_capped_and_advice_without_retry_after_is_not_kept():
    backoff, t = _backoff(max_hold=2.0)
    one = _conn("h", 1)
    _refuse(backoff, one, retry_after="30")
    _refuse(backoff, one, retry_after="30")
    assert t.slept == [2.0]
    two = _conn("h", 2)
    _refuse(backoff, two, retry_after=None)
    _refuse(backoff, two, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    _refuse(backoff, two)
    assert t.slept == [2.0] and ("h", 2) in backoff.until


def test_advice_that_ran_out_is_forgotten_and_the_table_is_bounded():
    backoff, t = _backoff()
    for port in range(50):
        _refuse(backoff, ("h", port))
    t.now += 1.5
    _refuse(backoff, ("h", 999))
    assert list(backoff.until) == [("h", 999)]
    backoff.until = {("old", i): (t.now + 10, None) for i in range(MAX_CLIENTS)}
    _refuse(backoff, ("new", 1))
    assert len(backoff.until) == MAX_CLIENTS and ("old", 0) not in backoff.until and ("new", 1) in backoff.until


def _serve_once(edge: EdgeMiddleware, client: tuple[str, int]) -> tuple[int, dict[str, str]]:
    scope = {"type": "http", "method": "POST", "path": "/v1/embed", "headers": [], "client": client}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(edge(scope, receive, send))
    return sent[0]["status"], {k.decode(): v.decode() for k, v in sent[0]["headers"]}


def test_the_edge_holds_429s_only_and_not_while_draining():
    async def app(scope: Any, receive: Any, send: Any) -> None:  # refuses /v1/embed, answers the rest
        status, headers = (429, [(b"retry-after", b"1")]) if scope["client"][0] == "busy" else (200, [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    draining = False
    edge = EdgeMiddleware(app, api_key=None, max_body_bytes=1 << 20, endpoints=frozenset({"/v1/embed"}),
                          closing=lambda: draining)
    assert edge.backoff is not None and edge.backoff.max_hold == 2.0
    edge.backoff, t = _backoff()
    held = REGISTRY.get_sample_value("serve_held_refusals_total")
    busy, free = _conn("busy", 1), _conn("free", 1)
    assert _serve_once(edge, busy)[0] == 429 and t.slept == []
    assert _serve_once(edge, busy)[0] == 429 and t.slept == [1.0]
    assert REGISTRY.get_sample_value("serve_held_refusals_total") == held + 1
    assert _serve_once(edge, free)[0] == 200 and _serve_once(edge, free)[0] == 200
    draining = True
    status, headers = _serve_once(edge, busy)
    assert status == 429 and headers["connection"] == "close" and t.slept == [1.0]
    off = EdgeMiddleware(app, api_key=None, max_body_bytes=1 << 20, endpoints=frozenset(), retry_after_hold=0)
    assert off.backoff is None and _serve_once(off, ("busy", 1))[0] == 429
