"""The task routes' short path (serve/dispatch.py) answers as FastAPI's own path does, without HTTP."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from serve.app import build_app
from serve.config import Settings
from serve.engine.engine import Answer
from serve.errors import ServeError
from serve.options import ServeOptions


class StubEngine:
    """What the app asks of an engine: one embedding model that answers at once (or fails on demand)."""

    def __init__(self) -> None:
        view = SimpleNamespace(manifest=SimpleNamespace(normalize=True, created="2025-01-01T00:00:00"),
                               task="embedding", spec=SimpleNamespace(name="minilm", options=ServeOptions()),
                               dimensions=4, embedding_sizes=lambda: [4], mask_token=None,
                               tokenizer=SimpleNamespace(vocab_size=lambda: 30),
                               describe=lambda: {"endpoint": "/v1/embed"})
        self.views = {"minilm": view}
        self.calls = 0

    async def infer(self, task: str, name: str | None, texts: list[str], params: dict[str, Any], *,
                    param: str = "inputs", path: str = "", client: Any = None) -> Answer:
        self.calls += 1
        if name == "gone":
            raise ServeError("model_not_found", f"model {name!r} is not served at {path}", "model")
        if name == "broken":
            raise RuntimeError("a bug")
        vectors = [np.full(4, i + 1, dtype=np.float32) for i in range(len(texts))]
        return Answer(name or "minilm", vectors, [[101, 7, 102]] * len(texts), "abc123def456")

    def refusal(self, task: str, client: Any = None) -> None:
        return None

    def served(self) -> dict[str, Any]:
        return self.views

    def describe(self, name: str) -> dict[str, Any]:
        return {}

    def live(self) -> tuple[bool, str]:
        return True, ""

    ready = live


def _post(app: Any, path: str, raw: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", content_type.encode()),
                         (b"content-length", str(len(raw)).encode())],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


BODIES = [
    ("/v1/embeddings", {"model": "minilm", "input": "a text"}),
    ("/v1/embeddings", {"model": "minilm", "input": ["one", "two"], "encoding_format": "base64"}),
    ("/v1/embed", {"inputs": ["one", "two"], "normalize": False}),
    ("/v1/embed", {"inputs": "hi", "inputz": 1}),
    ("/v1/embed", {"inputs": []}),
    ("/v1/embed", {"inputs": "hi", "model": "gone"}),
    ("/v1/embeddings", {"input": "hi"}),
    ("/v1/embeddings", {"model": "minilm", "input": [[1, 2]]}),
    ("/v1/embeddings", {"model": "minilm", "input": "hi", "dimensions": 3}),
    ("/v1/embed", b'["hi"]'),
    ("/v1/embed", b'{"inputs": "hi"'),
    ("/v1/embed", b'{"inputs": "EVQ\\ud800L"}'),
    ("/v1/embed", b""),
    ("/v1/embed", b"\xff\xfe{"),
]


@pytest.mark.parametrize(("path", "body"), BODIES, ids=[f"{p} {b!r}"[:60] for p, b in BODIES])
def test_short_path_answers_as_fastapi_does(path, body):
    engine = StubEngine()
    app = build_app(engine, Settings())
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    short = _post(app, path, raw, "application/json")
    calls = engine.calls
    fastapi = _post(app, path, raw, "application/vnd.api+json")  # JSON too, but not for the short path
    assert short[0] == fastapi[0] and json.loads(short[2]) == json.loads(fastapi[2])
    assert short[1].get("x-model-version") == fastapi[1].get("x-model-version")
    assert short[1].get("content-type") == fastapi[1].get("content-type") == "application/json"
    assert engine.calls == 2 * calls  # both reached the engine, or neither


def test_server_errors_are_hidden_on_the_short_path(caplog):
    engine = StubEngine()
    app = build_app(engine, Settings())
    status, headers, body = _post(app, "/v1/embed", b'{"inputs": "hi", "model": "broken"}', "application/json")
    error = json.loads(body)["error"]
    assert status == 500 and error["type"] == "server_error" and "a bug" not in error["message"]
    assert headers["x-request-id"] in error["message"] and "a bug" in caplog.text  # logged, with its id


def test_short_path_skips_fastapi_and_passes_the_rest_on():
    from serve.apis import task_routes
    from serve.dispatch import TaskDispatch

    seen: list[str] = []

    async def fastapi(scope: dict, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    engine = StubEngine()
    app = TaskDispatch(fastapi, task_routes(engine))
    ok = _post(app, "/v1/embed", b'{"inputs": ["a", "b"]}', "application/json; charset=utf-8")
    assert ok[0] == 200 and json.loads(ok[2])["embeddings"] == [[1.0] * 4, [2.0] * 4] and not seen
    assert _post(app, "/v1/embed", b'{"inputs": "a"}', "text/plain")[0] == 418  # FastAPI says what is wrong
    assert _post(app, "/v1/models", b"", "application/json")[0] == 418
    assert seen == ["/v1/embed", "/v1/models"]
