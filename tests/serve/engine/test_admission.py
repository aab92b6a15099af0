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


class Clock:
    """time.monotonic for the admission module, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_while_refusing_the_last_third_waits_for_clients_that_come_back_when_told(monkeypatch):
    from serve.engine import admission

    clock = Clock()
    monkeypatch.setattr(admission, "time", clock)
    a = Admission(max_requests=6, max_tokens=10_000)
    for i in range(6):  # nothing refused yet: the whole queue is anyone's
        a.reserve_request("m", ("10.0.0.1", i))
    with pytest.raises(ServeError):
        a.reserve_request("m", ("10.0.0.2", 1))  # told to come back in Retry-After (1 s)
    for _ in range(3):
        a.release(0)
    clock.now += 0.5
    a.reserve_request("m", ("10.0.0.3", 1))  # 4 of 6 queued: what a new client may fill while refusing
    with pytest.raises(ServeError) as exc:
        a.reserve_request("m", ("10.0.0.3", 2))
    assert "max_queue_requests 6, of which the last 2 wait for clients coming back when told" in exc.value.message
    assert a.full(("10.0.0.2", 1)) and a.full(None)  # the first refused client is not due yet
    clock.now += 0.6
    assert not a.full(("10.0.0.2", 1)) and a.full(("10.0.0.4", 1))
    a.reserve_request("m", ("10.0.0.2", 1))  # back when told: it takes the kept share
    assert a.requests == 5 and ("10.0.0.2", 1) not in a.told
    with pytest.raises(ServeError):  # once in, it is a client like any other
        a.reserve_request("m", ("10.0.0.2", 1))
    with pytest.raises(ServeError):
        a.reserve_request("m", ("10.0.0.5", 1))
    clock.now += 60  # no refusal for longer than the last Retry-After: the whole queue is anyone's again
    a.reserve_request("m", ("10.0.0.9", 1))
    assert a.requests == 6


def test_a_client_back_early_gets_no_kept_share_and_the_clients_told_are_bounded(monkeypatch):
    from serve.engine import admission

    clock = Clock()
    monkeypatch.setattr(admission, "time", clock)
    monkeypatch.setattr(admission, "MAX_TOLD", 3)
    a = Admission(max_requests=3, max_tokens=10_000)
    for i in range(3):
        a.reserve_request("m", ("h", i))
    with pytest.raises(ServeError):
        a.reserve_request("m", ("early", 1))
    a.release(0)
    clock.now += 0.5
    with pytest.raises(ServeError):  # 2 of 3 queued, the last place kept, and it is not due
        a.reserve_request("m", ("early", 1))
    assert a.told[("early", 1)] == clock.now + 1  # and told again, from now
    for i in range(4):
        a.refusal("m", client=("other", i))
    assert list(a.told) == [("other", 1), ("other", 2), ("other", 3)]
