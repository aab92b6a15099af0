"""The default host: the engine and its HTTP app in one process, on uvicorn.

One event loop reads requests and runs the engine's batch loops; forward passes and tokenization run
in their own threads (both release the GIL), so nothing crosses a process boundary and no request
is pickled. On SIGTERM or SIGINT the server drains:

1. ``/ready`` answers 503 at once, and every response carries ``Connection: close``; requests are
   still served for ``drain_grace`` seconds, so a load balancer sees the probe fail and stops
   sending, and keep-alive clients reconnect instead of writing on a closing connection;
2. then it stops accepting, waits half a second for requests already on their way over connections
   it accepted, answers every request admitted, closes idle connections, and exits within
   ``drain_timeout`` seconds of the signal (exit status 0).

A second signal stops at once. An engine that fails (a model that cannot load, a batch loop that
dies) stops the server with a non-zero status rather than leave it up and unable to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import uvicorn

from serve.app import build_app
from serve.config import ConfigError
from serve.engine import Engine
from serve.engine.watch import watch_artifacts

if TYPE_CHECKING:
    from types import FrameType

    from fastapi import FastAPI

    from serve.config import Settings
    from serve.models import ServedModel

log = logging.getLogger("serve")
# Between closing the listener and closing idle connections: a client that connected just before may
# still be sending its request, which would be lost (a reset, not an answer) if its connection closed now.
SETTLE_SECONDS = 0.5


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain phase between the signal and the stop; see the module docstring."""

    def __init__(self, config: uvicorn.Config, engine: Engine, grace: float) -> None:
        super().__init__(config)
        self.engine, self.grace = engine, grace
        self.draining_since: float | None = None
        self.failure: str | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining_since is not None:  # a second signal: stop now
            self.should_exit = self.force_exit = True
            return
        self.draining_since = time.monotonic()
        self.engine.state = "draining"
        log.info("signal %d: draining; /ready answers 503, serving %.1f s more before closing", sig, self.grace)
        loop = asyncio.get_running_loop()  # a signal handler runs on the loop's thread, between callbacks' bytecodes
        loop.call_soon_threadsafe(loop.call_later, self.grace, self._stop_accepting)

    def _stop_accepting(self) -> None:
        """Close the listening sockets, then, once requests already on their way over fresh connections have
        arrived (``SETTLE_SECONDS``), let uvicorn close the idle connections and wait for the rest."""
        log.info("drain: no longer accepting; answering the %d admitted requests",
                 sum(lane.admission.requests for lane in self.engine.lanes.values()))
        for server in self.servers:
            server.close()
        asyncio.get_running_loop().call_later(SETTLE_SECONDS, self._exit)

    def _exit(self) -> None:
        self.should_exit = True

    def fail(self, why: str) -> None:
        self.failure = why
        self.should_exit = True

    def closing(self) -> bool:
        return self.draining_since is not None


def _lifespan(server_ref: list[DrainingServer], engine: Engine, watch: float) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task] = []

        async def start() -> None:
            try:
                await engine.start()
            except Exception as e:
                log.error("the models could not be loaded: %s", e, exc_info=e)
                server_ref[0].fail(f"the models could not be loaded: {e}")
                return
            log.info("ready: %s", ", ".join(engine.lanes))
            if watch > 0:
                tasks.append(asyncio.create_task(watch_artifacts(engine, watch)))

        tasks += [asyncio.create_task(start()), asyncio.create_task(_monitor(engine, server_ref[0]))]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await engine.stop()

    return lifespan


async def _monitor(engine: Engine, server: DrainingServer) -> None:
    """Stop the server (non-zero exit) once the engine has failed: it must not linger unable to answer."""
    while engine.state != "failed":
        await asyncio.sleep(0.5)
    server.fail(engine.failure or "the engine failed")


def serve(models: list[ServedModel], settings: Settings) -> None:
    """Serve ``models`` until a signal has drained the server.

    Raises:
        ConfigError: the engine failed (a model did not load, or a batch loop died).
    """
    engine = Engine(models, timeout=settings.timeout)
    server_ref: list[DrainingServer] = []
    app = build_app(engine, settings, closing=lambda: bool(server_ref) and server_ref[0].closing())
    app.router.lifespan_context = _lifespan(server_ref, engine, settings.watch_interval)
    grace = min(settings.drain_grace, settings.drain_timeout)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                            lifespan="on", log_level=settings.log_level, access_log=False,
                            timeout_graceful_shutdown=max(int(settings.drain_timeout - grace), 1))
    server = DrainingServer(config, engine, grace)
    server_ref.append(server)
    server.run()
    if server.failure:
        raise ConfigError(f"server stopped: {server.failure}; the log above says why")
