"""Admission control: a model's queue is bounded in requests and in tokens; beyond it, 429 at once.

Counted are the requests (and their tokens) admitted and not yet answered, waiting or running. A
request over either bound is refused immediately with ``Retry-After``, never left to wait for a
timeout. A request larger than the whole token bound could never be admitted, so it is a client
error (413), not an overload. The engine runs on one event loop, so the counters need no lock.

``Retry-After`` is the time until the server could get to the client: the requests queued plus the
clients turned away since the last such advice (each will come back), at the rate requests are
answered. Clients that outnumber capacity many times over are spread out rather than told to come
back all at once, so the rejections themselves cost the server little.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from serve.errors import ServeError


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

    def reserve_request(self, model: str) -> None:
        """Take a request slot before any work is spent on the request.

        Raises:
            ServeError: 429 when the queue already holds ``max_requests``.
        """
        if self.requests >= self.max_requests:
            raise self.refusal(model)
        self.requests += 1

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

    def full(self) -> bool:
        """The next request would be refused."""
        return self.requests >= self.max_requests

    def refusal(self, model: str, why: str | None = None) -> ServeError:
        """The 429 for a request that does not fit, counted as a rejection."""
        why = why or f"{self.requests} requests are queued (max_queue_requests {self.max_requests})"
        self.rejected += 1
        wait = self.retry_after()
        self.refused.append(time.monotonic())
        self.window = float(wait)
        return ServeError("overloaded", f"model {model!r} is at capacity: {why}; retry after {wait} s or spread "
                         "the load over more replicas", headers={"Retry-After": str(wait)})
