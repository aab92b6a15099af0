"""Free ports that stay free until their server binds them.

A port found free by binding port 0 comes from the kernel's ephemeral range, the very range from which
every outgoing connection takes its local port. A server that binds it seconds later (HAProxy, once a
local Ray has started and its processes have opened dozens of connections) can find it taken. Ports
are drawn instead from a fixed quiet range, 20000-29999, that neither the kernel nor Ray hands out on
its own: Ray's worker ports end at 19999 and its replicas' direct-ingress ports start at 30000, and the
kernels' default ephemeral ranges start above it (Linux 32768, macOS and Windows 49152). Each drawn
port is bound once to check it is free now. A machine whose ephemeral range was lowered into
20000-29999 (``sysctl net.ipv4.ip_local_port_range``) loses that guarantee: keep it above 30000.
"""

from __future__ import annotations

import random
import socket

# Above Ray's worker ports (10002-19999), below its replicas' direct-ingress ports (30000-31000) and the
# kernels' default ephemeral ranges (Linux 32768-60999; macOS, Windows 49152-65535).
QUIET_PORTS = range(20000, 30000)


def free_ports(host: str, n: int, rng: random.Random | None = None) -> list[int]:
    """``n`` distinct ports free on ``host`` now, drawn from :data:`QUIET_PORTS`; any free port where those
    are all taken.

    Example::

        stats, metrics = free_ports("127.0.0.1", 2)
    """
    candidates = (rng or random.Random()).sample(QUIET_PORTS, min(len(QUIET_PORTS), 50 * n)) + [0] * (2 * n)
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
