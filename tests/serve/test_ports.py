"""Ports for servers that bind late: free, distinct, and outside what the kernel hands to outgoing connections."""

from __future__ import annotations

import socket

import pytest

from serve import ports


class Fixed:
    """A stand-in for ``random.Random`` whose sample is the given order."""

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def sample(self, pool: range, k: int) -> list[int]:
        return self.order


def test_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    low, high = (int(x) for x in ports.EPHEMERAL_RANGE.read_text().split())
    drawn = ports.free_ports("127.0.0.1", 3)
    assert len(set(drawn)) == 3
    if low > ports.QUIET_PORTS.start:  # a machine whose ephemeral range leaves quiet ports (Linux's default does)
        assert all(p in ports.QUIET_PORTS and not low <= p <= high for p in drawn)
    for p in drawn:  # free: each can be bound
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_taken_port_is_passed_over() -> None:
    taken, free = ports.free_ports("127.0.0.1", 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", taken))
        s.listen()
        assert ports.free_ports("127.0.0.1", 1, rng=Fixed([taken, free])) == [free]


def test_an_ephemeral_range_reaching_into_the_quiet_ports_narrows_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", tmp_path / "range")
    (tmp_path / "range").write_text("25000\t60999\n")
    assert ports.quiet_ports() == range(20000, 25000)
    (tmp_path / "range").write_text("1024\t65535\n")
    assert len(ports.quiet_ports()) == 0
    drawn = ports.free_ports("127.0.0.1", 2)  # none quiet: the kernel's picks
    assert len(set(drawn)) == 2 and all(p >= 1024 for p in drawn)
    (tmp_path / "range").unlink()  # not Linux: the whole quiet range
    assert ports.quiet_ports() == ports.QUIET_PORTS


def test_no_free_port_says_so() -> None:
    with pytest.raises(OSError, match=r"found 0 of the 1 free ports asked for on 203\.0\.113\.9"):
        ports.free_ports("203.0.113.9", 1, rng=Fixed([]))  # an address not on this machine binds nothing
