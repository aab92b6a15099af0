"""Admission control on its own: bounds in requests and tokens, 429 with Retry-After, 413 for the impossible."""

from __future__ import annotations

import time

import pytest

from serve.engine.admission import Admission
from serve.errors import ServeError


def test_requests_beyond_the_bound_get_429_with_retry_after():
    a = Admission(max_requests=2, max_tokens=1000)
    a.reserve_request("m")
    a.reserve_request("m")
    with pytest.raises(ServeError) as exc:
        a.reserve_request("m")
    e = exc.value
    assert (e.kind, e.status_code) == ("overloaded", 429) and int(e.headers["Retry-After"]) >= 1
    assert "max_queue_requests 2" in e.message and a.rejected == 1 and a.requests == 2
    a.release(0)
    a.reserve_request("m")  # room again
    assert a.requests == 2


def test_token_bound_and_oversized_requests():
    a = Admission(max_requests=10, max_tokens=100)
    a.reserve_request("m")
    a.reserve_tokens("m", 80)
    a.reserve_request("m")
    with pytest.raises(ServeError) as exc:
        a.reserve_tokens("m", 30)
    assert exc.value.status_code == 429 and "max_queue_tokens 100" in exc.value.message
    a.cancel_request()
    a.reserve_request("m")
    with pytest.raises(ServeError) as exc:  # could never fit, however empty the queue: the client's to fix
        a.reserve_tokens("m", 101)
    assert exc.value.status_code == 413 and exc.value.param == "inputs"
    a.cancel_request()
    assert (a.requests, a.tokens) == (1, 80)


def test_retry_after_grows_with_the_clients_turned_away():
    a = Admission(max_requests=4, max_tokens=10_000)
    now = time.monotonic()
    a.answered.extend(now - 1.0 + i * 0.1 for i in range(10))  # about 10 requests answered per second
    a.requests = 4
    first = int(a.refusal("m").headers["Retry-After"])
    for _ in range(40):  # forty more clients turned away within the window: they will all come back
        a.refusal("m")
    later = int(a.refusal("m").headers["Retry-After"])
    assert first == 1 and later >= 4 and a.rejected == 42
