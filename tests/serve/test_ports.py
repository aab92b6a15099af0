"""Ports for servers that bind late: free, distinct, and outside what the kernel hands to outgoing connections."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from serve import ports


class Fixed:
    """A stand-in for ``random.Random`` whose sample is the given order."""

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def sample(self, pool: range, k: int) -> list[int]:
        return self.order


def test_ports_are_distinct_free_and_quiet() -> None:
    drawn = ports.free_ports("127.0.0.1", 3)
    assert len(set(drawn)) == 3 and all(p in ports.QUIET_PORTS for p in drawn)
    for p in drawn:  # free: each can be bound
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_the_quiet_ports_are_outside_this_machines_ephemeral_range() -> None:
    """What the module assumes of the kernel (its docstring): outgoing connections take no quiet port."""
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not ephemeral.exists():
        pytest.skip("not Linux")
    low, high = (int(x) for x in ephemeral.read_text().split())
    assert low >= ports.QUIET_PORTS.stop or high < ports.QUIET_PORTS.start, (low, high)


def test_a_taken_port_is_passed_over() -> None:
    taken, free = ports.free_ports("127.0.0.1", 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", taken))
        s.listen()
        assert ports.free_ports("127.0.0.1", 1, rng=Fixed([taken, free])) == [free]


def test_with_every_quiet_port_taken_the_kernel_picks() -> None:
    drawn = ports.free_ports("127.0.0.1", 2, rng=Fixed([]))
    assert len(set(drawn)) == 2 and all(p >= 1024 for p in drawn)


def test_no_free_port_says_so() -> None:
    with pytest.raises(OSError, match=r"found 0 of the 1 free ports asked for on 203\.0\.113\.9"):
        ports.free_ports("203.0.113.9", 1, rng=Fixed([]))  # an address not on this machine binds nothing
