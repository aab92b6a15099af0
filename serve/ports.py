"""Free ports that stay free until their server binds them.

A port found free by binding port 0 comes from the kernel's ephemeral range, the very range from which
every outgoing connection takes its local port. A server that binds it seconds later (HAProxy, once a
local Ray has started and its processes have opened dozens of connections) can find it taken. Ports
are drawn instead from a range that neither the kernel nor Ray hands out on its own.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Above Ray's worker ports (10002-19999), below its replicas' direct-ingress ports (30000-31000) and the
# kernel's usual ephemeral range (32768-60999).
QUIET_PORTS = range(20000, 30000)
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def quiet_ports() -> range:
    """:data:`QUIET_PORTS` less the kernel's ephemeral range, where it reaches down into them."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = QUIET_PORTS.stop
    return range(QUIET_PORTS.start, min(QUIET_PORTS.stop, low))


def free_ports(host: str, n: int, rng: random.Random | None = None) -> list[int]:
    """``n`` distinct ports free on ``host`` now, drawn from :func:`quiet_ports`; any free port where those
    are all taken.

    Example::

        stats, metrics = free_ports("127.0.0.1", 2)
    """
    pool = quiet_ports()
    candidates = (rng or random.Random()).sample(pool, min(len(pool), 50 * n)) + [0] * (2 * n)
    ports: list[int] = []
    for candidate in candidates:
        port = _bind(host, candidate)
        if port is not None and port not in ports:
            ports.append(port)
            if len(ports) == n:
                return ports
    raise OSError(f"found {len(ports)} of the {n} free ports asked for on {host}")


def _bind(host: str, port: int) -> int | None:
    """The port that binding ``port`` on ``host`` gets (the kernel's pick for 0), or None if it is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return None
        return int(s.getsockname()[1])
