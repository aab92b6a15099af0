"""Joining a Ray cluster, or starting a local one bound to 127.0.0.1: shared by ``serve --ray`` and bulk
embedding. Ray is an optional extra; importing this module does not import it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from serve.config import ConfigError

log = logging.getLogger("serve")
INSTALL = "pip install 'mlm-compress[scale]'"
_STARTED: list[bool] = []  # whether this process started the Ray it is connected to
# Ray Serve's request path for replicas whose code is async (the engine runs its own threads): user code
# on the replica's event loop, the router on the caller's, request logs buffered. Part of what Ray's
# RAY_SERVE_THROUGHPUT_OPTIMIZED sets, without its direct ingress. A local Ray started here gets them
# (workers inherit the environment); a cluster's nodes need them in their own (see the README).
SERVE_TUNING = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
                "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000"}


def import_ray(local: bool = False) -> Any:
    """The ``ray`` module; ``local``: set up so that a local Ray started later binds to 127.0.0.1 only.

    Ray's own switch for that (the single-machine mode it uses on macOS and Windows) is read when
    ``ray`` is first imported, so this comes before any other import of it.

    Raises:
        ConfigError: Ray is not installed (the message says what to install).
    """
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(f"this needs Ray (Ray Serve and Ray Data): {INSTALL}") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://...``, ``HOST:PORT``), or start a local Ray on
    127.0.0.1 with ``num_cpus`` (default: all cores) and no dashboard. Returns whether it started one
    (the caller then shuts it down); an already connected driver is reused.
    """
    ray = import_ray(local=not address)
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a server
    if address:
        with _keeping_sigterm():
            ray.init(address=address, log_to_driver=False)
        log.info("joined the Ray cluster at %s: %s", address, ray.cluster_resources())
        _STARTED[:] = [False]
        return False
    # Ray lowers its workers' priority (nice 15) by default; here they are the server, and on a busy machine
    # they would yield to everything else while the driver and raylet do not.
    os.environ.setdefault("RAY_worker_niceness", "0")
    for name, value in SERVE_TUNING.items():
        os.environ.setdefault(name, value)
    with _keeping_sigterm():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    if ray.util.get_node_ip_address() != "127.0.0.1":
        log.warning("the local Ray listens on %s, not only 127.0.0.1: import serve.raycluster before ray",
                    ray.util.get_node_ip_address())
    log.info("started a local Ray on 127.0.0.1: %s", ray.cluster_resources())
    _STARTED[:] = [True]
    return True


@contextlib.contextmanager
def _keeping_sigterm() -> Iterator[None]:
    """Keep this process's SIGTERM handler across ``ray.init``: Ray's core installs its own, which ends the
    process at once, so the server would neither shut its Ray down (its agents linger) nor clean up."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def started_here() -> bool:
    """True when this process started the local Ray it is connected to (so its files are the replicas')."""
    return bool(_STARTED and _STARTED[0])
