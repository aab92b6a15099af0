"""The serving engine without HTTP, on tiny random BERTs: batching, budgets, overload, faults, live swap."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from typing import Any

import numpy as np
import pytest

from serve.engine import Engine
from serve.errors import ServeError
from tests.conftest import SENTENCES


def _model(model: Any, **options: Any) -> Any:
    """A copy of a prepared model with other serving options (the fixture's stays as it is)."""
    out = copy.copy(model)
    out.spec = copy.copy(model.spec)
    out.spec.options = model.spec.options.model_copy(update=options)
    return out


class Recording:
    """Wraps a backend: records each forward pass's shape; can sleep or fail on demand."""

    def __init__(self, backend: Any, delay: float = 0.0) -> None:
        self.backend, self.delay, self.fail_next = backend, delay, False
        self.input_names, self.description = backend.input_names, backend.description
        self.shapes: list[tuple[int, int]] = []
        self.running = self.peak = 0  # passes running at once, now and at the most
        self.lock = threading.Lock()

    def __call__(self, enc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.shapes.append(enc["input_ids"].shape)
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("backend exploded")
            return self.backend(enc)
        finally:
            with self.lock:
                self.running -= 1


async def _started(*models: Any, timeout: float = 30.0, delay: float = 0.0) -> tuple[Engine, dict[str, Recording]]:
    engine = Engine(list(models), timeout=timeout)
    await engine.start()
    recorders = {}
    for name, lane in engine.lanes.items():
        lane.current.backend = recorders[name] = Recording(lane.current.backend, delay)
    return engine, recorders


def _masked(n: int, words: int | None = None) -> list[str]:
    texts = [" ".join(s.split()[:words]) if words else s for s in SENTENCES[:n]]
    return [t.replace(t.split()[1], "[MASK]", 1) for t in texts]


def test_concurrent_requests_batch_and_match_single_runs(tiny_models):
    texts = _masked(12)

    async def main() -> tuple[list, list, list]:
        engine, rec = await _started(_model(tiny_models["fill-mask"], max_batch_size=8, batch_timeout=0.05))
        try:
            alone = [await engine.infer("fill-mask", None, [t], {"top_k": 3}) for t in texts]
            passes_alone = len(rec["tiny-fill-mask"].shapes)
            together = await asyncio.gather(*(engine.infer("fill-mask", None, [t], {"top_k": 3}) for t in texts))
            return alone, together, rec["tiny-fill-mask"].shapes[passes_alone:]
        finally:
            await engine.stop()

    alone, together, shapes = asyncio.run(main())
    assert sum(n for n, _ in shapes) == len(texts) and len(shapes) < len(texts)  # batched, every row once
    for a, b in zip(alone, together, strict=True):
        assert a.ids == b.ids and a.version == b.version
        for ra, rb in zip(a.results, b.results, strict=True):
            assert [m["ids"] for m in ra["masks"]] == [m["ids"] for m in rb["masks"]]
            assert np.allclose([m["scores"] for m in ra["masks"]], [m["scores"] for m in rb["masks"]], atol=1e-5)


def test_requests_of_several_inputs_run_each_once_and_keep_their_order(tiny_models):
    texts = _masked(20)
    requests = [texts[0:1], texts[1:6], texts[6:8], texts[8:20]]

    async def main() -> tuple[list, list, list]:
        engine, rec = await _started(_model(tiny_models["fill-mask"], max_batch_size=4, batch_timeout=0.05))
        try:
            alone = [await engine.infer("fill-mask", None, [t], {"top_k": 2}) for t in texts]
            first = len(rec["tiny-fill-mask"].shapes)
            together = await asyncio.gather(*(engine.infer("fill-mask", None, r, {"top_k": 2}) for r in requests))
            return alone, together, rec["tiny-fill-mask"].shapes[first:]
        finally:
            await engine.stop()

    alone, together, shapes = asyncio.run(main())
    assert sum(n for n, _ in shapes) == len(texts)  # every sequence in exactly one pass
    flat = [(ids, res) for answer in together for ids, res in zip(answer.ids, answer.results, strict=True)]
    assert [len(a.results) for a in together] == [len(r) for r in requests]
    for (ids, res), single in zip(flat, alone, strict=True):
        assert ids == single.ids[0]
        assert [m["ids"] for m in res["masks"]] == [m["ids"] for m in single.results[0]["masks"]]


@pytest.mark.parametrize("streams", [1, 3])
def test_streams_run_that_many_passes_at_once_and_answer_as_one(tiny_models, streams):
    texts = _masked(18)

    async def main() -> tuple[list, list, Recording]:
        engine, rec = await _started(_model(tiny_models["fill-mask"], max_batch_size=2, batch_timeout=0.0,
                                            streams=streams), delay=0.05)
        try:
            alone = [await engine.infer("fill-mask", None, [t], {"top_k": 2}) for t in texts]
            together = await asyncio.gather(*(engine.infer("fill-mask", None, [t], {"top_k": 2}) for t in texts))
            assert engine.lanes["tiny-fill-mask"].busy_since is None  # every pass has ended
            assert engine.describe("tiny-fill-mask")["streams"] == streams  # /v1/models says so
            return alone, together, rec["tiny-fill-mask"]
        finally:
            await engine.stop()

    alone, together, rec = asyncio.run(main())
    assert rec.peak == streams  # passes overlap up to the streams, never beyond
    assert sum(n for n, _ in rec.shapes) == 2 * len(texts) and max(n for n, _ in rec.shapes) <= 2
    for a, b in zip(alone, together, strict=True):
        assert a.ids == b.ids and [m["ids"] for m in a.results[0]["masks"]] == [m["ids"] for m in b.results[0]["masks"]]


@pytest.mark.parametrize("ahead", [0, 1])
def test_a_pass_formed_ahead_starts_while_the_event_loop_is_busy(tiny_models, ahead):
    texts = _masked(3)

    async def main() -> int:
        engine, rec = await _started(_model(tiny_models["fill-mask"], max_batch_size=1, batch_timeout=0.0, streams=1,
                                            passes_ahead=ahead), delay=0.05)
        try:
            answers = [asyncio.create_task(engine.infer("fill-mask", None, [t], {"top_k": 2})) for t in texts]
            for _ in range(5000):  # until the first pass has started (and, with ahead, the next one is queued)
                if rec["tiny-fill-mask"].shapes:
                    break
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.01)
            time.sleep(0.3)  # the event loop is busy: only passes formed before can start meanwhile
            started = len(rec["tiny-fill-mask"].shapes)
            assert len(await asyncio.gather(*answers)) == len(texts)
            assert engine.describe("tiny-fill-mask")["passes_ahead"] == ahead
            return started
        finally:
            await engine.stop()

    assert asyncio.run(main()) == 1 + ahead


def test_every_pass_keeps_the_token_budget(tiny_models):
    texts = _masked(24)  # 5 to 13 words: mixed lengths

    async def main() -> tuple[list, list]:
        engine, rec = await _started(_model(tiny_models["fill-mask"], max_batch_size=6, max_batch_tokens=40,
                                            batch_timeout=0.05))
        try:
            answers = await asyncio.gather(*(engine.infer("fill-mask", None, [t], {"top_k": 1}) for t in texts))
            return answers, rec["tiny-fill-mask"].shapes
        finally:
            await engine.stop()

    answers, shapes = asyncio.run(main())
    assert len(answers) == len(texts) and sum(n for n, _ in shapes) == len(texts)
    assert any(n > 1 for n, _ in shapes)
    for n, width in shapes:
        assert n <= 6 and (n == 1 or n * width <= 40), (n, width)


def test_overload_is_refused_at_once_with_429(tiny_models):
    async def main() -> list:
        engine, _ = await _started(_model(tiny_models["classification"], max_queue_requests=2), delay=0.3)
        try:
            calls = [engine.infer("classification", None, [SENTENCES[i]], {"top_k": None}) for i in range(5)]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await engine.stop()

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, ServeError)]
    assert len(refused) == 3 and len(results) - len(refused) == 2
    for e in refused:
        assert e.status_code == 429 and e.kind == "overloaded" and int(e.headers["Retry-After"]) >= 1
        assert "max_queue_requests 2" in e.message


@pytest.mark.parametrize("ahead", [0, 1])
def test_requests_past_the_timeout_get_504(tiny_models, ahead):
    """The first pass runs 0.3 s. A ticket queued ahead of it forms its pass only when the stream takes
    it up, so by then the rest have waited past the 0.1 s timeout: each is answered 504, none runs."""

    async def main() -> tuple[list, list]:
        engine, rec = await _started(_model(tiny_models["classification"], max_batch_size=2, streams=1,
                                            passes_ahead=ahead), timeout=0.1, delay=0.3)
        try:
            calls = [engine.infer("classification", None, [SENTENCES[i]], {"top_k": 1}) for i in range(6)]
            return await asyncio.gather(*calls, return_exceptions=True), rec["tiny-classification"].shapes
        finally:
            await engine.stop()

    results, shapes = asyncio.run(main())
    timed_out = [r for r in results if isinstance(r, ServeError) and r.status_code == 504]
    assert len(timed_out) == 4 and all(not isinstance(r, Exception) for r in results[:2])
    assert [n for n, _ in shapes] == [2]  # the timed-out requests never reached the model


def test_a_failed_pass_fails_its_requests_only(tiny_models):
    async def main() -> tuple[Any, Any, bool]:
        engine, rec = await _started(_model(tiny_models["classification"]))
        try:
            rec["tiny-classification"].fail_next = True
            failed = await asyncio.gather(engine.infer("classification", None, [SENTENCES[0]], {}),
                                          return_exceptions=True)
            ok = await engine.infer("classification", None, [SENTENCES[1]], {"top_k": 2})
            return failed[0], ok, engine.live()[0] and engine.ready()[0]
        finally:
            await engine.stop()

    failed, ok, healthy = asyncio.run(main())
    assert isinstance(failed, RuntimeError) and not isinstance(failed, ServeError)
    assert len(ok.results[0]["labels"]) == 2 and healthy


def test_model_choice_errors(tiny_models):
    async def main() -> list:
        engine, _ = await _started(tiny_models["fill-mask"], tiny_models["classification"])
        try:
            calls = [engine.infer("fill-mask", "nope", ["a [MASK]"], {"top_k": 1}),
                     engine.infer("fill-mask", "tiny-classification", ["a [MASK]"], {"top_k": 1}),
                     engine.infer("embedding", None, ["a"], {}),
                     engine.infer("fill-mask", None, ["no mask here"], {"top_k": 1}),
                     engine.infer("fill-mask", None, ["a [MASK]"] * 100, {"top_k": 1})]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await engine.stop()

    errors = asyncio.run(main())
    assert [e.status_code for e in errors] == [404, 404, 404, 422, 422]
    assert "tiny-fill-mask" in errors[0].message and "no embedding model" in errors[2].message
    assert "[MASK]" in errors[3].message and "at most" in errors[4].message


def test_live_swap_fails_no_request(tiny_models, tmp_path):
    """Reload onto a rebuilt artifact while requests flow: none fails, the new version answers after."""
    import shutil

    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model
    from serve.models import prepare_model
    from tests.conftest import build_tiny

    base = tiny_models["fill-mask"]
    artifact = tmp_path / "art"
    shutil.copytree(base.spec.artifact, artifact)
    model = prepare_model(base.spec.entry.model_copy(update={"artifact": str(artifact)}), tmp_path)
    build_tiny(tmp_path / "retrained", "bert", "fill-mask", seed=1)
    texts = _masked(8)

    async def main() -> tuple[list, str, str, Any]:
        engine, _ = await _started(model)
        lane = engine.lanes[model.name]
        old = lane.current
        stop = time.monotonic() + 60
        answers: list = []
        done = asyncio.Event()

        async def client(i: int) -> None:
            while not done.is_set() and time.monotonic() < stop:
                answers.append(await engine.infer("fill-mask", None, [texts[i]], {"top_k": 2}))

        clients = [asyncio.create_task(client(i)) for i in range(len(texts))]
        await asyncio.sleep(0.2)
        await asyncio.to_thread(compress_model, load_model(str(tmp_path / "retrained")), artifact, name=model.name,
                                recipe=Recipe.model_validate({"method": "fp32", "validation": {"gate": False,
                                                                                              "n": 16}}),
                                bench=False, force=True)
        new = await engine.reload(model.name)
        after = await engine.infer("fill-mask", None, [texts[0]], {"top_k": 2})
        done.set()
        await asyncio.gather(*clients)
        await engine.stop()
        return answers, old.id, new, (after, old.requests)

    answers, old_id, new_id, (after, old_left) = asyncio.run(main())
    assert new_id != old_id and after.version == new_id and old_left == 0
    assert all(not isinstance(a, BaseException) for a in answers)
    assert {a.version for a in answers} <= {old_id, new_id} and answers[0].version == old_id


@pytest.mark.parametrize("family", ["roberta", "modernbert", "deberta-v2"])
def test_fill_mask_of_other_families_uses_their_mask_token(tmp_path, family):
    """Served fill-mask equals the PyTorch model's own top-k at its tokenizer's mask token."""
    import torch

    from compress.catalog import ModelEntry
    from serve.models import prepare_model
    from tests.conftest import build_tiny

    torch_model, tok = build_tiny(tmp_path / "src", family, "fill-mask")
    entry = ModelEntry(name=f"tiny-{family}", source=str(tmp_path / "src"), recipe={"method": "fp32"},
                       artifact=str(tmp_path / "art"), serve={"threads": 1})
    text = SENTENCES[0].replace(SENTENCES[0].split()[2], tok.mask_token, 1)

    async def main() -> Any:
        engine, _ = await _started(prepare_model(entry, tmp_path))
        try:
            return await engine.infer("fill-mask", None, [text], {"top_k": 3})
        finally:
            await engine.stop()

    answer = asyncio.run(main())
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        logits = torch_model(**enc).logits[0]
    at = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])
    expected = torch.topk(logits[at], 3).indices.tolist()
    assert [m["ids"] for m in answer.results[0]["masks"]] == [expected]
