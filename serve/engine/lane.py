"""One model's lane through the engine: admission, tokenization, the batch queue, forward passes.

A request is admitted (or refused at once), tokenized off the event loop, and its sequences join
the lane's queue. The lane's loop hands the inference executor a *ticket* for a pass whenever work
waits and fewer than ``streams + passes_ahead`` tickets are out. A ticket is turned into a pass only
when an inference thread takes it up (late formation): the thread forms a batch from the queue (the
oldest ``max_batch_size`` sequences), cuts it into passes of similar length within ``max_batch_tokens``
(:mod:`serve.engine.plan`) and runs the pass that holds the oldest sequence; the rest wait for the
next ticket, planned again with whatever arrived meanwhile (continuous batching). With ``streams``
above 1, up to that many passes run at once; the ``passes_ahead`` tickets queued behind them let a
stream that finishes a pass start the next at once rather than idle while the event loop, busy with
HTTP, gets round to it, and since the pass is formed only then, it draws on everything that waits by
that time. Each request remembers the model version that tokenized it, and a batch never mixes
versions, so a live swap changes no answer half-way. The queue is shared by the event loop (which
appends) and the inference threads (which take): a lock guards it; answers and errors are set on
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
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
    from collections.abc import Hashable, Sequence
    from concurrent.futures import Executor

    from serve.backends import Backend
    from serve.engine.tokenize import TokenizeQueue
    from serve.models import ServedModel
    from serve.tokenizer import Text

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
    head: str | None = None  # the head asked, of a multi-head model
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
        inference: the executor forward passes run in (as many threads as the most streams of a model:
            passes of all models take turns on them).
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
        self._lock = threading.Lock()  # the queue: the event loop appends, the inference threads take
        self._waiting = 0  # tickets handed to the inference executor and not yet taken up by a thread
        self._wake, self._full = asyncio.Event(), asyncio.Event()
        self.streams = version.model.spec.streams()
        self.in_flight = self.streams + opts.passes_ahead  # tickets running or queued for a stream
        self._started: list[float] = []  # when each running pass started (liveness); kept by the inference threads
        metrics.MODEL_INFO.labels(self.name, version.id).set(1)

    async def submit(self, texts: Sequence[Text], params: dict[str, Any], param: str = "inputs",
                     head: str | None = None, client: Hashable | None = None) -> tuple[list[Any], list[list[int]], str]:
        """Answer one request: (one result per text, token ids, version id); ``head``: which head of a
        multi-head model (its requests share passes with the other heads'); ``client``: who asks
        (:func:`serve.clients.client_key`), for admission.

        Raises:
            ServeError: a bad request (4xx), or 429 when the queue is full, 504 past the timeout.
        """
        self._admit(self.admission.reserve_request, self.name, client)
        version = self.current
        version.enter()
        model = version.model.view(head)
        task = TASKS[model.task]
        tokens = 0
        try:
            prompt = version.model.prompt(params.get("prompt_name"))
            ids = await self.tokenize(version.model, texts, param, prompt)
            task.check(model, ids, params)
            tokens = sum(len(s) for s in ids)
            self._admit(self.admission.reserve_tokens, self.name, tokens)
        except BaseException:
            self.admission.cancel_request()
            version.leave()
            self._gauges()
            raise
        job = Job(version, ids, params, asyncio.get_running_loop().create_future(), head)
        try:
            with self._lock:
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
        results = [task.result(model, t, s, r, params) for t, s, r in zip(texts, ids, rows, strict=True)]
        return results, ids, version.id

    def refusal(self, client: Hashable | None = None) -> ServeError | None:
        """The 429 for a request of ``client`` turned away before it is read, when the queue is full; else None."""
        if not self.admission.full(client):
            return None
        metrics.REJECTIONS.labels(self.name).inc()
        return self.admission.refusal(self.name, client=client)

    def _admit(self, reserve: Any, *args: Any) -> None:
        try:
            reserve(*args)
        except ServeError as e:
            if e.kind == "overloaded":
                metrics.REJECTIONS.labels(self.name).inc()
            raise

    @property
    def busy_since(self) -> float | None:
        """When the oldest running forward pass started; None while none runs."""
        return min(self._started, default=None)

    async def run(self) -> None:
        """The batch loop: a ticket whenever a queued sequence has none and fewer than ``in_flight`` are
        out (each ticket takes one sequence at least); runs until cancelled."""
        passes: set[asyncio.Task] = set()
        try:
            while True:
                await self._gather()
                passes = _reap(passes)
                if len(passes) < self.in_flight and len(self.queue) > self._waiting:
                    with self._lock:
                        self._waiting += 1
                    passes.add(asyncio.create_task(self._run_pass()))
                    continue
                self._wake.clear()  # wait for a pass to end or a request to arrive
                arrival = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({*passes, arrival}, return_when=asyncio.FIRST_COMPLETED)
                arrival.cancel()
        finally:
            for task in passes:
                task.cancel()

    async def _gather(self) -> None:
        """Wait for work; then, unless a full batch waits, until the oldest has waited ``batch_timeout``."""
        while True:
            try:
                oldest = self.queue[0][0]  # the inference threads may take it meanwhile
                break
            except IndexError:
                self._wake.clear()
                await self._wake.wait()
        remaining = oldest.queued + self.options.batch_timeout - time.monotonic()
        if remaining > 0 and len(self.queue) < self.options.max_batch_size:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), remaining)

    def _form(self, expired: list[Job]) -> list[Item]:
        """The next batch, left in the queue: the oldest sequences (at most ``max_batch_size``) of the
        oldest's version; requests past the timeout go to ``expired`` (answered 504 on the event loop)."""
        batch: list[Item] = []
        now = time.monotonic()
        while self.queue and self.queue[0][0].future.done():  # failed or cancelled already
            self.queue.popleft()
        for item in self.queue:
            job = item[0]
            if len(batch) >= self.options.max_batch_size:
                break
            if job.future.done() or job in expired:
                continue
            if now - job.queued > self.timeout:
                expired.append(job)
                continue
            if batch and job.version is not batch[0][0].version:
                break
            batch.append(item)  # the queue's own tuple: _pick_pass takes it out by identity
        return batch

    def _pick_pass(self, batch: list[Item]) -> list[Item]:
        """Cut the batch into passes of similar length and take the pass that holds its oldest sequence.

        The rest stay queued and are planned again with whatever arrives meanwhile (continuous
        batching at the grain of a pass: each pass draws on everything waiting, oldest first).
        """
        oldest = batch[0]
        batch.sort(key=lambda it: len(it[0].ids[it[1]]))
        lengths = [len(job.ids[i]) for job, i in batch]
        passes = plan_passes(lengths, self.options.max_batch_size, self.options.max_batch_tokens)
        start, stop = next((a, b) for a, b in passes if any(it is oldest for it in batch[a:b]))
        chosen = batch[start:stop]
        taken = {id(it) for it in chosen}
        self.queue = deque(it for it in self.queue if id(it) not in taken)  # under the lock (_ticket)
        metrics.BATCH_SIZE.labels(self.name).observe(len(batch))
        metrics.PADDING.labels(self.name).inc(padded_tokens(lengths, [(start, stop)]) - sum(lengths[start:stop]))
        now = time.monotonic()
        for job, _ in chosen:
            if not job.started:
                job.started = True
                metrics.QUEUE_SECONDS.labels(self.name).observe(now - job.queued)
        self._gauges()
        return chosen

    async def _run_pass(self) -> None:
        """One ticket: the pass an inference thread forms and runs; a request is answered once all its
        rows are in, and requests that waited past the timeout are answered 504."""
        expired: list[Job] = []
        chunk: list[Item] = []
        try:
            rows, seconds = await asyncio.get_running_loop().run_in_executor(self.inference, self._ticket, expired,
                                                                             chunk)
        except Exception as e:
            log.error("%s: a forward pass of %d sequences failed", self.name, len(chunk), exc_info=e)
            for job, _ in chunk:
                if not job.future.done():
                    job.future.set_exception(RuntimeError(f"inference failed in model {self.name}"))
            return
        finally:
            for job in expired:
                if not job.future.done():
                    job.future.set_exception(ServeError("timeout", f"the request waited more than {self.timeout:g} "
                                                        "s in the queue; retry later or lower the load"))
        if not chunk:
            return
        self._account([job.ids[i] for job, i in chunk], seconds)
        for (job, i), row in zip(chunk, rows, strict=True):
            job.rows[i] = row
            job.left -= 1
            if job.left == 0 and not job.future.done():
                job.future.set_result(job.rows)

    def _ticket(self, expired: list[Job], chunk: list[Item]) -> tuple[list[Any], float]:
        """In an inference thread: take a pass from the queue into ``chunk`` (expired requests into
        ``expired``) and run it; (rows, seconds), or ([], 0) when the queue had nothing left."""
        with self._lock:
            self._waiting -= 1
            batch = self._form(expired)
            if batch:
                chunk.extend(self._pick_pass(batch))
            else:
                self._gauges()
        if not chunk:
            return [], 0.0
        return self._forward(chunk[0][0].version, [job.ids[i] for job, i in chunk], [job.params for job, _ in chunk],
                             [job.head for job, _ in chunk])

    def _forward(self, version: Version, seqs: list[list[int]], params: list[dict[str, Any]],
                 heads: list[str | None]) -> tuple[list[Any], float]:
        """Pad, run once, split into rows, each by its head's task: (rows, seconds), in the inference thread
        (timed from when a stream took the pass up, not from when it was queued)."""
        from serve.engine.batch import pad_batch, second_segment
        from serve.engine.task_heads import head_rows

        t0 = time.monotonic()
        self._started.append(t0)
        try:
            model = version.model
            segments = [second_segment(s, model.pair_boundary) if p.get("pairs") else len(s)
                        for s, p in zip(seqs, params, strict=True)]
            enc = pad_batch(seqs, model.spec.pad_id, version.backend.input_names, segments)
            out = version.backend(enc)
            if model.manifest.heads is None:
                rows = self.task.rows(out, seqs, model, params)
            else:
                rows = head_rows(out, seqs, model, params, heads)
        finally:
            self._started.remove(t0)
        return rows, time.monotonic() - t0

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
        return {"version": self.current.id, "streams": self.streams, "passes_ahead": o.passes_ahead,
                "max_batch_size": o.max_batch_size,
                "max_batch_tokens": o.max_batch_tokens,
                "max_queue_requests": a.max_requests, "max_queue_tokens": a.max_tokens,
                "queued_requests": a.requests, "queued_tokens": a.tokens, "rejected": a.rejected}


def _reap(passes: set[asyncio.Task]) -> set[asyncio.Task]:
    """The passes still running; one that failed outside its own handling stops the batch loop."""
    for task in passes:
        if task.done() and not task.cancelled():
            task.result()
    return {task for task in passes if not task.done()}
