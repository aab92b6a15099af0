"""Admission control: a model's queue is bounded in requests and in tokens; beyond it, 429 at once.

Counted are the requests (and their tokens) admitted and not yet answered, waiting or running. A
request over either bound is refused immediately with ``Retry-After``, never left to wait for a
timeout. A request larger than the whole token bound could never be admitted, so it is a client
error (413), not an overload. The engine runs on one event loop, so the counters need no lock.

``Retry-After`` is the time until the server could get to the client: the requests queued plus the
clients turned away since the last such advice (each will come back), at the rate requests are
answered. Clients that outnumber capacity many times over are spread out rather than told to come
back all at once, so the rejections themselves cost the server little.

While requests are being refused, the last third of the queue is kept for clients that come back
when their ``Retry-After`` has passed (by connection: :mod:`serve.clients`). Otherwise a client that
was just answered asks again at once, into the place its own answer freed, and a client told to wait
finds the queue full every time it comes back: with 256 clients that wait as told, only 66-136 of
them were answered at all in 20 s.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from serve.errors import ServeError

KEPT_SHARE = 3  # while refusing, 1/KEPT_SHARE of the queue waits for clients that come back when told
MAX_TOLD = 10_000  # clients remembered as told to come back; the oldest are forgotten beyond it


@dataclass
class Admission:
    """The bounds of one model's queue and what it holds now."""

    max_requests: int
    max_tokens: int
    requests: int = 0
    tokens: int = 0
    rejected: int = 0
    window: float = 1.0  # the last Retry-After given: rejections within it are clients still to come back
    answered: deque[float] = field(default_factory=deque)  # when requests were answered (the last 5 s)
    refused: deque[float] = field(default_factory=deque)  # when requests were refused (the last window)
    told: dict[Hashable, float] = field(default_factory=dict)  # client -> when it may come back (oldest first)

    def reserve_request(self, model: str, client: Hashable | None = None) -> None:
        """Take a request slot for ``client`` (None: unknown) before any work is spent on the request.

        Raises:
            ServeError: 429 when the queue already holds what :meth:`limit` allows ``client``.
        """
        if self.requests >= self.limit(client):
            raise self.refusal(model, client=client)
        if client is not None and self.told:
            self.told.pop(client, None)
        self.requests += 1

    def limit(self, client: Hashable | None) -> int:
        """The requests ``client``'s request may find queued: ``max_requests``, less the share kept for
        clients that come back when told while requests are being refused, unless it is one of them."""
        now = time.monotonic()
        if client is not None and self.told.get(client, math.inf) <= now:
            return self.max_requests
        if self.refused and self.refused[-1] > now - self.window:
            return self.max_requests - self.max_requests // KEPT_SHARE
        return self.max_requests

    def reserve_tokens(self, model: str, tokens: int) -> None:
        """Add a reserved request's tokens (on refusal the caller gives the slot back: :meth:`cancel_request`).

        Raises:
            ServeError: 413 when the request alone exceeds ``max_tokens``; 429 when the queue is full.
        """
        if tokens > self.max_tokens:
            raise ServeError("payload_too_large", f"the request holds {tokens} tokens; model {model!r} queues at "
                             f"most {self.max_tokens} (max_queue_tokens): send fewer or shorter inputs per request",
                             "inputs")
        if self.tokens + tokens > self.max_tokens:
            raise self.refusal(model, f"{self.tokens} tokens are queued (max_queue_tokens {self.max_tokens})")
        self.tokens += tokens

    def release(self, tokens: int) -> None:
        """A reserved request was answered (or failed)."""
        self.requests -= 1
        self.tokens -= tokens
        now = time.monotonic()
        self.answered.append(now)
        while self.answered[0] < now - 5.0:
            self.answered.popleft()

    def cancel_request(self) -> None:
        """A reserved request failed before its tokens were reserved."""
        self.requests -= 1

    def retry_after(self) -> int:
        """Whole seconds until the server could answer one more client (1..60); see the module docstring."""
        now = time.monotonic()
        while self.refused and self.refused[0] < now - self.window:
            self.refused.popleft()
        while self.answered and self.answered[0] < now - 5.0:
            self.answered.popleft()
        if len(self.answered) < 2:
            return 1
        rate = len(self.answered) / max(now - self.answered[0], 0.5)
        return min(60, max(1, math.ceil((self.requests + len(self.refused)) / rate)))

    def full(self, client: Hashable | None = None) -> bool:
        """The next request of ``client`` would be refused."""
        return self.requests >= self.limit(client)

    def refusal(self, model: str, why: str | None = None, client: Hashable | None = None) -> ServeError:
        """The 429 for a request of ``client`` that does not fit, counted as a rejection."""
        kept = (f", of which the last {self.max_requests // KEPT_SHARE} wait for clients coming back when told"
                if self.requests < self.max_requests else "")
        why = why or f"{self.requests} requests are queued (max_queue_requests {self.max_requests}{kept})"
        self.rejected += 1
        wait = self.retry_after()
        now = time.monotonic()
        self.refused.append(now)
        self.window = float(wait)
        if client is not None:
            self._tell(client, now + wait)
        return ServeError("overloaded", f"model {model!r} is at capacity: {why}; retry after {wait} s or spread "
                         "the load over more replicas", headers={"Retry-After": str(wait)})

    def _tell(self, client: Hashable, when: float) -> None:
        """Remember that ``client`` may come back at ``when`` (at most MAX_TOLD clients, the latest)."""
        self.told.pop(client, None)
        self.told[client] = when
        while len(self.told) > MAX_TOLD:
            del self.told[next(iter(self.told))]
