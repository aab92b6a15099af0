"""One model's lane through the engine: admission, tokenization, the batch queue, forward passes.

A request is admitted (or refused at once), tokenized off the event loop, and its sequences join
the lane's queue. The lane's loop forms a batch from the queue (FIFO, at most ``max_batch_size``
sequences and ``max_batch_tokens`` tokens), cuts it into passes of similar length
(:mod:`serve.engine.plan`) and runs them in the inference thread; while a batch runs, the next one
gathers (continuous batching). Each request remembers the model version that tokenized it, and a
batch never mixes versions, so a live swap changes no answer half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from serve import metrics
from serve.engine.admission import Admission
from serve.engine.plan import padded_tokens, plan_passes
from serve.engine.tasks import TASKS
from serve.errors import ServeError

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from serve.backends import Backend
    from serve.engine.tokenize import TokenizeQueue
    from serve.models import ServedModel

log = logging.getLogger("serve")


@dataclass(eq=False)
class Version:
    """A loaded artifact: the model's request side, its backend, and the artifact's sha256 prefix."""

    model: ServedModel
    backend: Backend
    id: str
    requests: int = 0  # admitted on this version and not yet answered
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self) -> None:
        self.requests += 1
        self.idle.clear()

    def leave(self) -> None:
        self.requests -= 1
        if self.requests == 0:
            self.idle.set()


@dataclass(eq=False)
class Job:
    """One admitted request: its sequences, parameters, and the future its answer goes to."""

    version: Version
    ids: list[list[int]]
    params: dict[str, Any]
    future: asyncio.Future
    queued: float = field(default_factory=time.monotonic)
    rows: list[Any] = field(default_factory=list)
    left: int = 0
    started: bool = False

    def __post_init__(self) -> None:
        self.rows, self.left = [None] * len(self.ids), len(self.ids)


Item = tuple[Job, int]  # a request and one of its sequences


class Lane:
    """Serves one model name; see the module docstring.

    Args:
        version: the loaded model to start with.
        inference: the executor forward passes run in (one thread: passes of all models take turns).
        tokenize: the tokenization queue (batched, off the event loop).
        timeout: seconds a sequence may wait in the queue before its request is answered 504.
    """

    def __init__(self, version: Version, *, inference: Executor, tokenize: TokenizeQueue, timeout: float) -> None:
        self.current = version
        opts = version.model.spec.options
        self.name, self.options, self.timeout = version.model.name, opts, timeout
        self.task = TASKS[version.model.task]
        self.admission = Admission(opts.max_queue_requests, opts.max_queue_tokens)
        self.inference, self.tokenize = inference, tokenize
        self.queue: deque[Item] = deque()
        self._wake, self._full = asyncio.Event(), asyncio.Event()
        self.busy_since: float | None = None  # when the running forward pass started (liveness)
        metrics.MODEL_INFO.labels(self.name, version.id).set(1)

    async def submit(self, texts: list[str], params: dict[str, Any], param: str = "inputs"
                     ) -> tuple[list[Any], list[list[int]], str]:
        """Answer one request: (one result per text, token ids, version id).

        Raises:
            ServeError: a bad request (4xx), or 429 when the queue is full, 504 past the timeout.
        """
        self._admit(self.admission.reserve_request, self.name)
        version = self.current
        version.enter()
        tokens = 0
        try:
            ids = await self.tokenize(version.model, texts, param)
            self.task.check(version.model, ids, params)
            tokens = sum(len(s) for s in ids)
            self._admit(self.admission.reserve_tokens, self.name, tokens)
        except BaseException:
            self.admission.cancel_request()
            version.leave()
            self._gauges()
            raise
        job = Job(version, ids, params, asyncio.get_running_loop().create_future())
        try:
            self.queue.extend((job, i) for i in range(len(ids)))
            self._gauges()
            self._wake.set()
            if len(self.queue) >= self.options.max_batch_size:
                self._full.set()
            rows = await job.future
        finally:
            self.admission.release(tokens)
            version.leave()
            self._gauges()
        results = [self.task.result(version.model, t, s, r, params) for t, s, r in zip(texts, ids, rows, strict=True)]
        return results, ids, version.id

    def refusal(self) -> ServeError | None:
        """The 429 for a request turned away before it is read, when the queue is full; else None."""
        if not self.admission.full():
            return None
        metrics.REJECTIONS.labels(self.name).inc()
        return self.admission.refusal(self.name)

    def _admit(self, reserve: Any, *args: Any) -> None:
        try:
            reserve(*args)
        except ServeError as e:
            if e.kind == "overloaded":
                metrics.REJECTIONS.labels(self.name).inc()
            raise

    async def run(self) -> None:
        """The batch loop; runs until cancelled."""
        while True:
            await self._gather()
            items = self._take()
            if items:
                await self._run_batch(items)

    async def _gather(self) -> None:
        """Wait for work; then, unless a full batch waits, until the oldest has waited ``batch_timeout``."""
        while not self.queue:
            self._wake.clear()
            await self._wake.wait()
        remaining = self.queue[0][0].queued + self.options.batch_timeout - time.monotonic()
        if remaining > 0 and len(self.queue) < self.options.max_batch_size:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), remaining)

    def _take(self) -> list[Item]:
        """The next batch: FIFO, one version, within the item and token budgets; expired items fail 504."""
        items: list[Item] = []
        tokens, now = 0, time.monotonic()
        while self.queue and len(items) < self.options.max_batch_size:
            job, i = self.queue[0]
            if job.future.done():  # failed or cancelled already
                self.queue.popleft()
                continue
            if now - job.queued > self.timeout:
                self.queue.popleft()
                job.future.set_exception(ServeError("timeout", f"the request waited more than {self.timeout:g} s "
                                                    "in the queue; retry later or lower the load"))
                continue
            n = len(job.ids[i])
            if items and (job.version is not items[0][0].version or tokens + n > self.options.max_batch_tokens):
                break
            items.append(self.queue.popleft())
            tokens += n
            if not job.started:
                job.started = True
                metrics.QUEUE_SECONDS.labels(self.name).observe(now - job.queued)
        self._gauges()
        return items

    async def _run_batch(self, items: list[Item]) -> None:
        """Run a formed batch as passes of similar length, answering each request once all its rows are in."""
        items.sort(key=lambda it: len(it[0].ids[it[1]]))
        lengths = [len(job.ids[i]) for job, i in items]
        passes = plan_passes(lengths, self.options.max_batch_size, self.options.max_batch_tokens)
        metrics.BATCH_SIZE.labels(self.name).observe(len(items))
        metrics.PADDING.labels(self.name).inc(padded_tokens(lengths, passes) - sum(lengths))
        version = items[0][0].version
        loop = asyncio.get_running_loop()
        for start, stop in passes:
            chunk = [it for it in items[start:stop] if not it[0].future.done()]
            if not chunk:
                continue
            seqs = [job.ids[i] for job, i in chunk]
            self.busy_since = t0 = time.monotonic()
            try:
                rows = await loop.run_in_executor(self.inference, self._forward, version, seqs,
                                                  [job.params for job, _ in chunk])
            except Exception as e:
                log.error("%s: a forward pass of %d sequences failed", self.name, len(seqs), exc_info=e)
                for job, _ in chunk:
                    if not job.future.done():
                        job.future.set_exception(RuntimeError(f"inference failed in model {self.name}"))
                continue
            finally:
                self.busy_since = None
            seconds = time.monotonic() - t0
            self._account(seqs, seconds)
            for (job, i), row in zip(chunk, rows, strict=True):
                job.rows[i] = row
                job.left -= 1
                if job.left == 0 and not job.future.done():
                    job.future.set_result(job.rows)

    def _forward(self, version: Version, seqs: list[list[int]], params: list[dict[str, Any]]) -> list[Any]:
        """Pad, run, split into rows (the inference thread)."""
        from serve.engine.batch import pad_batch

        model = version.model
        enc = pad_batch(seqs, model.spec.pad_id, version.backend.input_names)
        return self.task.rows(version.backend(enc), seqs, model, params)

    def _account(self, seqs: list[list[int]], seconds: float) -> None:
        tokens = sum(len(s) for s in seqs)
        metrics.PASS_SIZE.labels(self.name).observe(len(seqs))
        metrics.INFERENCE_SECONDS.labels(self.name).observe(seconds)
        metrics.TOKENS.labels(self.name).inc(tokens)
        metrics.ITEMS.labels(self.name).inc(len(seqs))

    def _gauges(self) -> None:
        metrics.QUEUE_REQUESTS.labels(self.name).set(self.admission.requests)
        metrics.QUEUE_TOKENS.labels(self.name).set(self.admission.tokens)
        metrics.QUEUE_ITEMS.labels(self.name).set(len(self.queue))

    def describe(self) -> dict[str, Any]:
        """Limits, queue state and version, for /v1/models."""
        a, o = self.admission, self.options
        return {"version": self.current.id, "max_batch_size": o.max_batch_size, "max_batch_tokens": o.max_batch_tokens,
                "max_queue_requests": a.max_requests, "max_queue_tokens": a.max_tokens,
                "queued_requests": a.requests, "queued_tokens": a.tokens, "rejected": a.rejected}
