"""``/metrics`` on a Ray cluster: every replica's Prometheus figures, gathered by one small actor.

On a local Ray that ``serve --ray`` started, the replicas write to the server's multiprocess directory
and ``/metrics`` merges it (serve/metrics.py). On a cluster they run on other machines: each replica
sends its rendered figures every few seconds to a named actor of the application (the board), and
``/metrics`` answers the board's figures, every sample labelled with the replica it came from
(``replica="minilm#abc12"``), so that sums over replicas are a PromQL ``sum without (replica)`` away.
A replica that stops sending (stopped, crashed, scaled down) drops out after :data:`STALE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from serve import metrics

log = logging.getLogger("serve")
PUSH_SECONDS = 5.0
STALE_SECONDS = 3 * PUSH_SECONDS
NAMESPACE = "mlm-compress"


def on_cluster() -> bool:
    """True in a replica whose figures do not reach a shared multiprocess directory (see serve.hosts.ray)."""
    return not os.environ.get(metrics.ENV_DIR)


class MetricsBoard:
    """The latest rendered figures of each replica, kept while fresh."""

    def __init__(self) -> None:
        self.texts: dict[str, tuple[float, str]] = {}

    def put(self, replica: str, text: str) -> None:
        self.texts[replica] = (time.monotonic(), text)

    def get(self) -> dict[str, str]:
        now = time.monotonic()
        self.texts = {r: (t, text) for r, (t, text) in self.texts.items() if now - t < STALE_SECONDS}
        return {r: text for r, (_, text) in self.texts.items()}


def board(app_name: str) -> Any:
    """The application's board actor (made by the first replica that asks; it lives as long as the cluster
    unless ``serve --ray`` removes it on exit)."""
    import ray

    return ray.remote(num_cpus=0)(MetricsBoard).options(
        name=f"{app_name}-metrics", namespace=NAMESPACE, get_if_exists=True, lifetime="detached").remote()


def remove_board(app_name: str) -> None:
    import ray

    with contextlib.suppress(ValueError):  # never made
        ray.kill(ray.get_actor(f"{app_name}-metrics", namespace=NAMESPACE))


async def push_forever(app_name: str, replica: str) -> None:
    """Send this process's figures to the board every :data:`PUSH_SECONDS`; runs until cancelled."""
    target = board(app_name)
    while True:
        try:
            await target.put.remote(replica, metrics.render()[0].decode())
        except Exception as e:  # the board restarting: the next push makes it anew
            log.warning("could not send metrics to the board (%s)", e)
            target = board(app_name)
        await asyncio.sleep(PUSH_SECONDS)


def merge(texts: dict[str, str]) -> bytes:
    """Prometheus texts by replica -> one text, each sample labelled with its replica."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    for replica, text in sorted(texts.items()):
        for fam in text_string_to_metric_families(text):
            into = families.setdefault(fam.name, Metric(fam.name, fam.documentation, fam.type, fam.unit))
            into.samples += [s._replace(labels={**s.labels, "replica": replica}) for s in fam.samples]

    class Gathered:
        def collect(self) -> list[Metric]:
            return list(families.values())

    registry = CollectorRegistry()
    registry.register(Gathered())  # type: ignore[arg-type]
    return generate_latest(registry)


def board_render(app_name: str) -> Any:
    """The ``/metrics`` body of a cluster: the board's figures, merged (an async callable for serve/app.py).
    The board's handle is looked up once, and again only after a failed call."""
    found: list[Any] = []

    async def render() -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST

        if not found:
            found.append(board(app_name))
        try:
            texts = await found[0].get.remote()
        except Exception:
            found.clear()
            raise
        return merge(texts), CONTENT_TYPE_LATEST

    return render
