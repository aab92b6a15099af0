"""What every endpoint shares: a LitAPI for the inference worker and a LitSpec for the HTTP side.

Per request the work is split three ways (as infinity does):

- ``encode_pre`` (HTTP process): validate, tokenize, check limits. A bad request is answered here and
  never reaches a batch, so one client's mistake cannot fail another client's request.
- ``encode_core`` (inference worker, :meth:`TaskAPI.predict`): requests collected by the batch loop
  are flattened, sorted by length, padded, and run in forward passes of at most ``max_batch_size``.
- ``encode_post``: numeric post-processing in the worker (softmax, top-k, normalisation), text in
  the HTTP process (labels, tokens, filled sequences).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
import uuid
from collections import defaultdict
from queue import Empty
from typing import TYPE_CHECKING, Any, ClassVar

import litserve as ls
import numpy as np
from fastapi import HTTPException
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.loops.simple_loops import BatchedLoop
from litserve.specs.base import LitSpec
from litserve.utils import LitAPIStatus, LoopResponseType, ResponseBufferItem

from serve import metrics
from serve.errors import ServeError, request_id

if TYPE_CHECKING:
    from fastapi import Request

    from serve.backends import Backend
    from serve.models import ModelSpec, ServedModel

log = logging.getLogger("serve")


def pad_batch(seqs: list[list[int]], pad_id: int, input_names: list[str]) -> tuple[dict[str, np.ndarray], int]:
    """Right-pad token id lists into the graph's int64 inputs; returns (encoding, padding tokens added)."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    enc = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        enc["token_type_ids"] = np.zeros_like(ids)
    return enc, int(ids.size - mask.sum())


class NaturalBatchLoop(BatchedLoop):
    """LitServe's batched loop with a collector that does not idle while requests wait.

    LitServe 0.2.19's collector waits the full ``batch_timeout`` after taking the first request, even
    when that request already waited longer in the queue, and busy-polls the queue when the timeout
    is 0. This one blocks for the first request, takes whatever else is queued, and waits for more
    only until the oldest request has waited ``batch_timeout``.
    """

    def get_batch_requests(self, lit_api: ls.LitAPI, request_queue: Any, transport: Any) -> tuple[list, list]:
        payloads: list = []
        timed_out: list = []
        try:
            first = request_queue.get(timeout=1.0)
        except Empty:
            return payloads, timed_out
        deadline = self._take(first, lit_api, transport, payloads, timed_out) + lit_api.batch_timeout
        while len(payloads) + len(timed_out) < lit_api.max_batch_size:
            try:
                item = request_queue.get_nowait()
            except Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = request_queue.get(timeout=remaining)
                except Empty:
                    break
            self._take(item, lit_api, transport, payloads, timed_out)
        return payloads, timed_out

    def _take(self, item: Any, lit_api: ls.LitAPI, transport: Any, payloads: list, timed_out: list) -> float:
        if item == _SENTINEL_VALUE:
            raise _StopLoopError()
        response_queue_id, uid, timestamp, x = item
        self.put_response(transport, response_queue_id, uid, (), LitAPIStatus.START, LoopResponseType.REGULAR)
        limit = lit_api.request_timeout
        if limit not in (None, False, -1) and time.monotonic() - timestamp > limit:
            timed_out.append((response_queue_id, uid))
        else:
            payloads.append((response_queue_id, uid, x))
        return float(timestamp)


class TaskAPI(ls.LitAPI):
    """The inference worker of one task: loads its models, batches and runs their requests."""

    task: ClassVar[str]

    def __init__(self, specs: list[ModelSpec], spec: TaskSpec, log_level: str = "info") -> None:
        super().__init__(max_batch_size=max(s.options.max_batch_size for s in specs),
                         batch_timeout=min(s.options.batch_timeout for s in specs),
                         spec=spec, loop=NaturalBatchLoop())
        self.specs = {s.name: s for s in specs}
        self.log_level = log_level
        self.endpoint = spec.api_path
        self.backends: dict[str, Backend] = {}

    def setup(self, device: str) -> None:
        from serve.backends import load_backend

        logging.basicConfig(level=self.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for name, spec in self.specs.items():
            t0 = time.perf_counter()
            backend = load_backend(spec)
            for batch in ([spec.warmup[0]], spec.warmup * min(8, spec.options.max_batch_size)):
                enc, _ = pad_batch(batch, spec.pad_id, backend.input_names)
                backend(enc)
            self.backends[name] = backend
            o = spec.options
            log.info("%s (%s) loaded and warmed up in %.1fs: %s; forward passes of up to %d, batch timeout %g ms",
                     name, spec.task, time.perf_counter() - t0, backend.description, o.max_batch_size,
                     o.batch_timeout * 1000)

    def decode_request(self, request: dict[str, Any]) -> dict[str, Any]:
        return request  # validated and tokenized by the HTTP side already

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output

    def predict(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = time.monotonic()
        for p in payloads:
            metrics.QUEUE_SECONDS.labels(self.endpoint).observe(max(0.0, now - p["t"]))
        metrics.BATCH_REQUESTS.labels(self.endpoint).observe(len(payloads))
        try:
            return self._run(payloads)
        except Exception:
            log.error("inference failed for request ids %s", ", ".join(p["rid"] for p in payloads))
            raise

    def _run(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[list[Any]] = [[None] * len(p["ids"]) for p in payloads]
        groups: dict[str, list[tuple[int, int, list[int]]]] = defaultdict(list)
        for r, p in enumerate(payloads):
            groups[p["model"]].extend((r, i, ids) for i, ids in enumerate(p["ids"]))
        for name, items in groups.items():
            spec, backend = self.specs[name], self.backends[name]
            items.sort(key=lambda it: len(it[2]))  # similar lengths together: less padding
            step = spec.options.max_batch_size
            for start in range(0, len(items), step):
                chunk = items[start: start + step]
                seqs = [c[2] for c in chunk]
                enc, padding = pad_batch(seqs, spec.pad_id, backend.input_names)
                t0 = time.perf_counter()
                out = backend(enc)
                metrics.INFERENCE_SECONDS.labels(name).observe(time.perf_counter() - t0)
                metrics.BATCH_SIZE.labels(name).observe(len(chunk))
                metrics.TOKENS.labels(name).inc(sum(len(s) for s in seqs))
                metrics.PADDING.labels(name).inc(padding)
                metrics.ITEMS.labels(name).inc(len(chunk))
                for (r, i, _), row in zip(chunk, self.split_rows(out, seqs, spec), strict=True):
                    results[r][i] = self.finish(row, payloads[r])
        return [{"items": res} for res in results]

    def split_rows(self, out: dict[str, np.ndarray], seqs: list[list[int]], spec: ModelSpec) -> list[Any]:
        """The graph's batch outputs, one entry per input row."""
        raise NotImplementedError

    def finish(self, row: Any, payload: dict[str, Any]) -> Any:
        """Numeric post-processing of one row with the request's parameters."""
        return row


class TaskSpec(LitSpec):
    """The HTTP side of one task: picks the model, runs ``encode_pre``, queues, awaits the worker.

    Routes are added by :func:`serve.server.build_app` (with response models and documented errors)
    rather than through LitSpec's endpoint list.
    """

    task: ClassVar[str]
    paths: ClassVar[tuple[str, ...]]

    def __init__(self, models: list[ServedModel], all_models: list[ServedModel]) -> None:
        super().__init__()
        self.api_path = self.paths[0]
        self.models = {m.name: m for m in models}
        self.all_names = [m.name for m in all_models]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["models"] = {}  # tokenizers stay in the HTTP process
        return state

    def decode_request(self, request: Any, context_kwargs: Any = None) -> Any:
        return request

    def encode_response(self, output: Any, context_kwargs: Any = None) -> Any:
        return output

    def routes(self) -> list[tuple[str, Any, type, str]]:
        """(path, endpoint, response model, summary) of this task's routes."""
        raise NotImplementedError

    def pick(self, name: str | None, request: Request) -> ServedModel:
        """The model a request names (or the endpoint's only one).

        Raises:
            ServeError: 404 for a model not served here, 422 when several are and none is named.
        """
        here = ", ".join(self.models) or "none"
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            if self.models:
                raise ServeError("invalid_request", f"model is required: this endpoint serves {here}", "model")
        elif name in self.models:
            return self.models[name]
        path = request.scope.get("path", self.api_path)
        what = f"model {name!r} is not served at {path}" if name else f"no {self.task} model is served"
        raise ServeError("model_not_found", f"{what}; models for this endpoint: {here}; all served models: "
                         f"{', '.join(self.all_names)} (GET /v1/models)", "model")

    @staticmethod
    def as_list(inputs: str | list[str]) -> list[str]:
        return [inputs] if isinstance(inputs, str) else list(inputs)

    def encode_pre(self, model: ServedModel, texts: list[str], param: str = "inputs") -> list[list[int]]:
        limit = model.spec.options.max_items
        if len(texts) > limit:
            raise ServeError("invalid_request", f"{param} has {len(texts)} items; model {model.name!r} takes at most "
                             f"{limit} per request: split them over several requests", param)
        return model.tokenize(texts, param)

    async def submit(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a tokenized request for the inference worker and await its answer."""
        rid = request_id(request)
        uid = rid if rid != "-" else uuid.uuid4().hex
        event = asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(event=event)
        try:
            payload["rid"], payload["t"] = rid, time.monotonic()
            self.request_queue.put((self.response_queue_id, uid, payload["t"], payload))
            await event.wait()
            response, status = self.response_buffer[uid].response
        finally:
            self.response_buffer.pop(uid, None)
        if status == LitAPIStatus.ERROR:
            if isinstance(response, bytes):
                try:
                    response = pickle.loads(response)
                except Exception:  # an unpicklable error is still a server error
                    response = RuntimeError("unreadable worker error")
            if isinstance(response, HTTPException):
                raise response
            log.error("request %s failed in the %s worker: %r", rid, self.task, response)
            raise HTTPException(500, "inference failed")
        return response
