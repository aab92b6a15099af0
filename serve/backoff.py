"""Retry-After, enforced: a client refused with 429 that comes back early gets its next 429 late.

A 429 costs the server little, but a client that ignores ``Retry-After`` and asks again at once
turns the refusals into the load: 240 such clients on 2 cores sent about 6,000 requests a second,
and the server and the clients spent the cores on refusals, not answers (goodput 0.17x of the
16-client figure, against 0.97x with clients that wait as told). So the server remembers, per
connection, until when it asked that client to wait; a 429 for a client that asks again on that
connection within that time is held back until then (at most ``max_hold`` seconds). A client that
honours ``Retry-After`` never waits for its 429; one that does not is slowed to the pace it was asked
for. A new connection is never held, even from an address and port that were just told to wait: on
loopback the kernel hands a closed connection's port to the next one at once, most often another
client's. Only refusals are held: an answer that fits the queue is never delayed. Behind a proxy that
pools its connections to the server, one connection carries many clients' requests: turn the hold
off there (``--retry-after-hold 0``; the Ray host's replicas never hold).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable

from serve import metrics

MAX_CLIENTS = 10_000  # connections remembered at once (about 1.5 MB); the oldest advice is dropped beyond it


class Backoff:
    """Until when each connection was asked to wait, and the hold for one that came back early.

    Args:
        max_hold: the longest a 429 is held (so a drain or a client's timeout is not held up long).
        clock, sleep: time.monotonic and asyncio.sleep; tests pass their own.
    """

    def __init__(self, max_hold: float = 2.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.max_hold = max_hold
        self.clock, self.sleep = clock, sleep
        # (host, port) -> (until when, the connection's scope["client"]); insertion order is the order advice was given
        self.until: dict[Hashable, tuple[float, object]] = {}

    async def refuse(self, key: Hashable | None, client: object, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Before a 429 goes to ``client``: wait out what is left of its last advice, then note the new one.

        ``key`` is the client's :func:`serve.clients.client_key`; None (unknown, or an address a proxy
        forwarded, which may stand for many clients) is never held. ``client`` is the ASGI scope's
        ``client`` itself: the ASGI server makes that object once per connection (uvicorn does), so the
        same object is the same connection, and an equal one from a new connection is not held.
        ``headers`` are the 429's; their ``Retry-After`` is the new advice.
        """
        if key is None:
            return
        until, connection = self.until.pop(key, (0.0, None))
        early = until - self.clock()
        if early > 0 and connection is client:
            metrics.HELD_REFUSALS.inc()
            await self.sleep(min(early, self.max_hold))
        wait = _retry_after(headers)
        if wait:
            self._forget_past()
            self.until[key] = (self.clock() + wait, client)

    def _forget_past(self) -> None:
        """Drop advice that has run out (oldest first), and the oldest beyond MAX_CLIENTS."""
        now = self.clock()
        while self.until:
            key, (until, _) = next(iter(self.until.items()))
            if until > now and len(self.until) < MAX_CLIENTS:
                return
            del self.until[key]


def _retry_after(headers: Iterable[tuple[bytes, bytes]]) -> float:
    """The Retry-After of a response in seconds (0 when absent or given as an HTTP date)."""
    for name, value in headers:
        if name.lower() == b"retry-after":
            return float(value) if value.strip().isdigit() else 0.0
    return 0.0
