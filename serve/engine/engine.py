"""The serving engine: every served model's lane, the inference and tokenizer threads, live swaps.

No web framework in here: a host (serve/hosts/) turns HTTP requests into :meth:`Engine.infer` calls
and :class:`serve.errors.ServeError` into statuses, so the same engine runs under any host and is
tested without one.

    engine = Engine(models)
    await engine.start()                      # load, warm up, start the batch loops
    answer = await engine.infer("embedding", "minilm", ["a text"], {"normalize": True})
    await engine.reload("minilm")            # load the artifact again beside the old one, then switch
    await engine.stop()
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serve import metrics
from serve.engine.addresses import choose_address, served_addresses
from serve.engine.batch import pad_batch
from serve.engine.lane import Lane, Version
from serve.engine.tokenize import TokenizeQueue
from serve.errors import ServeError

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence

    from serve.models import ServedModel
    from serve.tokenizer import Text

log = logging.getLogger("serve")
HANG_SECONDS = 120.0  # a forward pass running longer than this means the engine is stuck: not live


@dataclass
class Answer:
    """One request's answer: the model's name, one result per input, token ids, artifact version."""

    model: str
    results: list[Any]
    ids: list[list[int]]
    version: str


def artifact_version(directory: str | Path) -> str:
    """The artifact's version: the first 12 hex digits of the sha256 over its files (names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def load_version(model: ServedModel) -> Version:
    """Load a model's backend, warm it up (one sequence, then a batch), and take its version."""
    from serve.backends import load_backend

    t0 = time.perf_counter()
    spec = model.spec
    backend = load_backend(spec)
    for batch in ([spec.warmup[0]], spec.warmup * min(8, spec.options.max_batch_size)):
        out = backend(pad_batch(batch, spec.pad_id, backend.input_names))
    model.output_sizes.update({k: int(v.shape[-1]) for k, v in out.items() if v.ndim == 2})  # embedding sizes
    version = Version(model, backend, artifact_version(spec.artifact))
    o = spec.options
    log.info("%s (%s) version %s loaded and warmed up in %.1fs: %s; passes of up to %d sequences and %d tokens, "
             "queue of %d requests and %d tokens", model.name, model.task, version.id, time.perf_counter() - t0,
             backend.description, o.max_batch_size, o.max_batch_tokens, o.max_queue_requests, o.max_queue_tokens)
    return version


class Engine:
    """Serves ``models``; see the module docstring.

    Args:
        models: the models, made ready by :func:`serve.models.prepare_models`.
        timeout: seconds a request may wait in a queue before it is answered 504.
    """

    def __init__(self, models: list[ServedModel], *, timeout: float = 30.0) -> None:
        self.models = {m.name: m for m in models}
        self.timeout = timeout
        self.lanes: dict[str, Lane] = {}
        self.state = "loading"  # loading -> ready -> draining; or failed
        self.failure: str | None = None
        streams = max((m.spec.streams() for m in models), default=1)
        self._inference = ThreadPoolExecutor(streams, thread_name_prefix="inference")
        self._tokenize = TokenizeQueue(ThreadPoolExecutor(1, thread_name_prefix="tokenize"))
        self._loops: list[asyncio.Task] = []
        self._swaps: dict[str, asyncio.Lock] = {}
        self._loaded: dict[str, Version] = {}

    def load(self) -> None:
        """Load and warm up every model here and now (a host that starts its event loop later calls this first).

        Raises:
            Exception: whatever loading raised; the engine is then ``failed``.
        """
        try:
            for name, model in self.models.items():
                if name not in self._loaded:
                    self._loaded[name] = load_version(model)
        except BaseException as e:
            self._fail(f"loading failed: {e}")
            raise

    async def start(self) -> None:
        """Load and warm up every model not loaded yet (in the inference thread), then start the batch loops.

        Raises:
            Exception: whatever loading raised; the engine is then ``failed``.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._inference, self.load)
        for name, version in self._loaded.items():
            self.lanes[name] = Lane(version, inference=self._inference, tokenize=self._tokenize, timeout=self.timeout)
            self._swaps[name] = asyncio.Lock()
        for lane in self.lanes.values():
            task = loop.create_task(lane.run(), name=f"lane-{lane.name}")
            task.add_done_callback(self._loop_ended)
            self._loops.append(task)
        self.state = "ready"

    async def stop(self) -> None:
        """Cancel the batch loops and release the threads (requests still queued are not answered)."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._inference.shutdown(wait=False, cancel_futures=True)
        self._tokenize.executor.shutdown(wait=False, cancel_futures=True)

    def served(self) -> dict[str, ServedModel]:
        """Every addressable name (a model, or each head of a multi-head model) and the view that answers it."""
        return served_addresses(self.models.values())

    def pick(self, task: str, name: str | None, path: str = "") -> tuple[Lane, ServedModel]:
        """The lane a request names (or the only one of its task), and the model or head view it asks.

        Raises:
            ServeError: as :meth:`choose`.
        """
        view = self.served()[self.choose(task, name, path)]
        return self.lanes[view.spec.name], view

    def choose(self, task: str, name: str | None, path: str = "") -> str:
        """The address a request names (a model, or ``MODEL:HEAD``), or the only one of its task.

        Raises:
            ServeError: 404 for a model not served for this task, 422 when several are and none is named,
                503 while loading.
        """
        if self.state in ("loading", "failed"):
            why = "models are still loading" if self.state == "loading" else f"the engine failed ({self.failure})"
            raise ServeError("not_ready", f"not ready: {why}; retry shortly", headers={"Retry-After": "1"})
        return choose_address(self.served(), task, name, path)

    async def infer(self, task: str, name: str | None, texts: Sequence[Text], params: dict[str, Any], *,
                    param: str = "inputs", path: str = "", client: Hashable | None = None) -> Answer:
        """Answer one request of ``task`` on model ``name`` for ``client`` (who asks, for admission: None if unknown).

        Raises:
            ServeError: bad request (4xx), overloaded (429), not ready (503), timeout (504).
        """
        lane, view = self.pick(task, name, path)
        limit = lane.options.max_items
        if len(texts) > limit:
            raise ServeError("invalid_request", f"{param} has {len(texts)} items; model {view.name!r} takes at most "
                             f"{limit} per request: split them over several requests", param)
        results, ids, version = await lane.submit(texts, params, param, head=view.head.name if view.head else None,
                                                  client=client)
        return Answer(view.name, results, ids, version)

    def refusal(self, task: str, client: Hashable | None = None) -> ServeError | None:
        """A 429 for ``client``'s request to ``task`` when every model serving it is full, before the request is read.

        Refusing at the edge keeps a 429 cheap (no body parsed, nothing tokenized) when clients outnumber
        capacity many times over.
        """
        if self.state != "ready":
            return None
        names = {v.spec.name for v in self.served().values() if v.task == task}
        lanes = [lane for name, lane in self.lanes.items() if name in names]
        if not lanes or not all(lane.admission.full(client) for lane in lanes):
            return None
        return lanes[0].refusal(client)

    async def reload_requested(self, name: str) -> str:
        """A reload asked for over the API (``POST /v1/models/{id}/reload``): :meth:`reload`, where a host
        has no reason to refuse it."""
        return await self.reload(name)

    async def reload(self, name: str) -> str:
        """Load model ``name``'s artifact again beside the serving one, warm it up, switch, drain the old.

        Requests admitted before the switch finish on the old version; none fails. Returns the version
        now served (unchanged when the artifact is).

        Raises:
            ServeError: 404 for an unknown model.
            Exception: the new artifact could not be loaded; the old one keeps serving.
        """
        from serve.models import reload_model

        if name not in self.lanes:
            raise ServeError("model_not_found", f"model {name!r} is not served; served models: "
                             f"{', '.join(self.models)}", "model_id")
        lane = self.lanes[name]
        async with self._swaps[name]:
            model = await asyncio.to_thread(reload_model, lane.current.model)
            version = await asyncio.to_thread(load_version, model)
            old = lane.current
            if version.id == old.id:
                return old.id
            lane.current = version
            self.models[name] = model
            metrics.MODEL_INFO.labels(name, version.id).set(1)
            metrics.MODEL_INFO.remove(name, old.id)
            log.info("%s: now serving version %s (was %s); the old one drains %d requests", name, version.id,
                     old.id, old.requests)
            if old.requests:
                await old.idle.wait()
            return version.id

    def live(self) -> tuple[bool, str]:
        """(alive, why not): the batch loops run and no forward pass is stuck."""
        if self.state == "failed":
            return False, f"the engine failed: {self.failure}"
        now = time.monotonic()
        for lane in self.lanes.values():
            if lane.busy_since is not None and now - lane.busy_since > HANG_SECONDS:
                return False, f"a forward pass of {lane.name} has run for {now - lane.busy_since:.0f} s"
        return True, ""

    def ready(self) -> tuple[bool, str]:
        """(ready, why not): loaded, live, and not draining."""
        alive, why = self.live()
        if not alive:
            return False, why
        if self.state != "ready":
            return False, {"loading": "models are still loading", "draining": "the server is shutting down"
                           }.get(self.state, self.state)
        return True, ""

    def describe(self, name: str) -> dict[str, Any]:
        return self.lanes[name].describe() if name in self.lanes else {}

    def _loop_ended(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        error = task.exception()
        self._fail(f"{task.get_name()} stopped: {error!r}")
        log.error("%s stopped; the engine cannot answer and reports not live", task.get_name(), exc_info=error)

    def _fail(self, why: str) -> None:
        self.state, self.failure = "failed", why
