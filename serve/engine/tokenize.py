"""Tokenization off the event loop, in batches: requests that arrive together share one tokenizer call.

The fast tokenizer's batch call releases the GIL, so it runs in its own thread while the event loop
reads requests and the inference thread runs forward passes. While one call runs, new requests
wait and go together into the next one (continuous batching, as the forward passes do).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

from serve.errors import ServeError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Executor

    from serve.models import ServedModel
    from serve.tokenizer import Text

Pending = tuple["ServedModel", "Sequence[Text]", str, "str | None", asyncio.Future]  # model, texts, param, prompt


class TokenizeQueue:
    """``await queue(model, texts, param, prompt)`` -> token ids (after the prompt), checked against the model's
    length limit."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.pending: list[Pending] = []
        self.running = False
        self._task: asyncio.Task | None = None

    async def __call__(self, model: ServedModel, texts: Sequence[Text], param: str = "inputs",
                       prompt: str | None = None) -> list[list[int]]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((model, texts, param, prompt, future))
        if not self.running:
            self.running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                results = await loop.run_in_executor(self.executor, tokenize_many, batch)
                for (*_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.running = False


def tokenize_many(batch: list[Pending]) -> list[list[list[int]] | BaseException]:
    """Each request's token ids (or its error): one tokenizer call per model and prompt for all their requests."""
    by_model: dict[tuple[int, str | None], list[int]] = defaultdict(list)
    for k, (model, _, _, prompt, _) in enumerate(batch):
        by_model[id(model), prompt].append(k)
    results: list[list[list[int]] | BaseException] = [[] for _ in batch]
    for ks in by_model.values():
        model, prompt = batch[ks[0]][0], batch[ks[0]][3]
        texts = [t for k in ks for t in batch[k][1]]
        try:
            ids = model.encode(texts, "inputs", prompt)
        except ServeError:  # one request's text broke the call: tokenize each on its own to say whose
            ids = None
        start = 0
        for k in ks:
            _, own, param, _, _ = batch[k]
            try:
                mine = ids[start: start + len(own)] if ids is not None else model.encode(own, param, prompt)
                results[k] = model.fit(mine, own, param, prompt)
            except ServeError as e:
                results[k] = e
            start += len(own)
    return results
