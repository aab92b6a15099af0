"""The serving pieces on their own: padding, top-k, batch collection, error shapes, options, the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import queue
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi import HTTPException
from pydantic import ValidationError
from starlette.requests import Request

from compress.catalog import ModelEntry, ServeOptions
from serve.apis.base import NaturalBatchLoop, TaskSpec, pad_batch
from serve.apis.fill_mask import top_k
from serve.apis.schemas import check_texts
from serve.config import ConfigError, parse_size, read_api_key
from serve.errors import _server_error, _validation_message


def _request(rid: str = "abc123", path: str = "/v1/embed") -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b"",
                    "state": {"request_id": rid}})


def test_pad_batch_pads_right_and_masks():
    enc, padding = pad_batch([[2, 5, 3], [2, 3]], pad_id=0, input_names=["input_ids", "attention_mask",
                                                                          "token_type_ids"])
    assert enc["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert enc["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert enc["token_type_ids"].sum() == 0 and padding == 1 and enc["input_ids"].dtype == np.int64
    assert "token_type_ids" not in pad_batch([[1]], 0, ["input_ids", "attention_mask"])[0]


def test_top_k_is_sorted_softmax():
    logits = np.array([[0.0, 3.0, 1.0, 2.0]])
    ids, probs = top_k(logits, 3)
    assert ids.tolist() == [[1, 3, 2]]
    full = np.exp(logits) / np.exp(logits).sum()
    assert np.allclose(probs, full[0, [1, 3, 2]])
    assert top_k(logits, 50)[0].shape == (1, 4)  # k is capped at the vocabulary


@pytest.mark.parametrize(("value", "words"), [("", "empty"), ([], "empty list"), ([1], "not a string"),
                                              ({"a": 1}, "not dict"), (["ok", "  "], "item 1")])
def test_check_texts_says_what_is_wrong(value, words):
    with pytest.raises(ValueError, match=words):
        check_texts(value)


def test_validation_messages():
    assert _validation_message({"type": "json_invalid", "loc": ("body", 3), "ctx": {"error": "x"}})[0] == "invalid_json"
    assert _validation_message({"type": "missing", "loc": ("body", "inputs")}) == (
        "invalid_request", "inputs is required", "inputs")
    _, message, param = _validation_message({"type": "value_error", "loc": ("body", "inputs"),
                                                "msg": "Value error, item 0 is empty; send some text"})
    assert message == "inputs: item 0 is empty; send some text" and param == "inputs"


def test_server_error_is_logged_with_request_id_and_hidden(caplog):
    with caplog.at_level(logging.ERROR, logger="serve"):
        resp = _server_error(_request("rid-42"), RuntimeError("secret internals"))
    body = json.loads(resp.body)
    assert resp.status_code == 500 and body["error"]["type"] == "server_error"
    assert "rid-42" in body["error"]["message"] and "secret" not in resp.body.decode()
    assert "rid-42" in caplog.text and "secret internals" in caplog.text  # the traceback is in the log


class _Spec(TaskSpec):
    task, paths = "embedding", ("/v1/embed",)


def test_worker_failure_becomes_500_and_is_logged(caplog):
    spec = _Spec([], [])
    spec.response_buffer, spec.response_queue_id = {}, 0

    class FailingQueue:
        def put(self, item):
            _, uid, _, _ = item
            spec.response_buffer[uid].response = (pickle.dumps(RuntimeError("boom")), "ERROR")
            spec.response_buffer[uid].event.set()

    spec.request_queue = FailingQueue()
    with caplog.at_level(logging.ERROR, logger="serve"), pytest.raises(HTTPException) as exc:
        asyncio.run(spec.submit(_request("rid-7"), {"model": "m", "ids": [[1]]}))
    assert exc.value.status_code == 500 and "rid-7" in caplog.text and not spec.response_buffer


def test_natural_batch_loop_does_not_idle():
    loop = NaturalBatchLoop()
    api = SimpleNamespace(max_batch_size=8, batch_timeout=0.2, request_timeout=30)
    q: queue.Queue = queue.Queue()
    old = time.monotonic() - 1.0  # these requests already waited longer than batch_timeout
    for i in range(3):
        q.put((0, f"u{i}", old, {"i": i}))
    t0 = time.monotonic()
    got, timed_out = loop.get_batch_requests(api, q, None)
    assert [p[1] for p in got] == ["u0", "u1", "u2"] and not timed_out
    assert time.monotonic() - t0 < 0.1
    now = time.monotonic()  # a fresh request waits batch_timeout for company, and takes what comes
    q.put((0, "a", now, {}))
    q.put((0, "b", now, {}))
    got, _ = loop.get_batch_requests(api, q, None)
    assert len(got) == 2 and 0.15 < time.monotonic() - now < 1.0
    for i in range(10):  # a full batch goes at once
        q.put((0, f"f{i}", time.monotonic(), {}))
    t0 = time.monotonic()
    got, _ = loop.get_batch_requests(api, q, None)
    assert len(got) == 8 and time.monotonic() - t0 < 0.1
    api.request_timeout = 0.5
    q.put((0, "late", old, {}))
    got, timed_out = loop.get_batch_requests(api, q, None)
    assert timed_out == [(0, "late")] and [p[1] for p in got] == ["f8", "f9"]


def test_serve_options_validate():
    assert ServeOptions().backend is None  # as the artifact says
    with pytest.raises(ValidationError, match="needs backend: torch"):
        ServeOptions(precision="bnb-int8")
    with pytest.raises(ValidationError):
        ServeOptions(max_batch_size=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        ModelEntry(name="m", source="x", serve={"batch": 3})


def test_config_helpers(tmp_path, monkeypatch):
    assert parse_size("1MB") == 1 << 20 and parse_size("64KiB") == 65536 and parse_size("1000") == 1000
    with pytest.raises(ConfigError, match="1MB"):
        parse_size("lots")
    monkeypatch.setenv("SERVE_API_KEY", "from-env")
    assert read_api_key(None) == "from-env"
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert read_api_key(key_file) == "from-file"
    with pytest.raises(ConfigError, match="cannot read"):
        read_api_key(tmp_path / "missing")


def _serve(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serve", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_cli_help_is_instant():
    t0 = time.perf_counter()
    out = _serve("--help")
    assert out.returncode == 0 and "--config" in out.stdout and time.perf_counter() - t0 < 10
    assert "torch" not in out.stderr


def test_cli_missing_config(tmp_path):
    out = _serve("--config", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "nope.yaml not found" in out.stderr and "--config FILE" in out.stderr


def test_cli_cuda_asked_but_missing_fails_at_start(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    (tmp_path / "models.yaml").write_text(
        "models:\n  - {name: m, source: x, task: embedding, artifact: nowhere, serve: {device: cuda}}\n")
    out = _serve("--config", str(tmp_path / "models.yaml"))
    assert out.returncode == 2 and "cuda was requested" in out.stderr and "onnxruntime-gpu" in out.stderr


def test_cli_missing_artifact_without_compression(tmp_path):
    (tmp_path / "models.yaml").write_text("models:\n  - {name: m, source: x, task: embedding}\n")
    out = _serve("--config", str(tmp_path / "models.yaml"), "--no-compress")
    assert out.returncode == 2 and "compress run m" in out.stderr
