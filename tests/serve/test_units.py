"""The serving pieces on their own: padding, top-k, error shapes, options, the CLI."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
from pydantic import ValidationError
from starlette.requests import Request

from compress.catalog import ModelEntry
from serve.apis.schemas import check_texts
from serve.config import ConfigError, Settings, parse_size, read_api_key
from serve.engine.batch import pad_batch
from serve.engine.tasks import top_k
from serve.errors import ServeError, _serve_error, _server_error, _validation_message
from serve.options import ServeOptions


def _request(rid: str = "abc123", path: str = "/v1/embed") -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b"",
                    "state": {"request_id": rid}})


def test_pad_batch_pads_right_and_masks():
    enc = pad_batch([[2, 5, 3], [2, 3]], pad_id=0, input_names=["input_ids", "attention_mask", "token_type_ids"])
    assert enc["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert enc["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert enc["token_type_ids"].sum() == 0 and enc["input_ids"].dtype == np.int64
    assert "token_type_ids" not in pad_batch([[1]], 0, ["input_ids", "attention_mask"])


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


@pytest.mark.parametrize("blank", [" \t\n", "\x1d", "\x85\u3000", "\ufeff"])
def test_a_text_blank_in_either_regex_dialect_is_refused_and_the_schema_pattern_says_so(blank):
    """Python's \\s holds \\x1c-\\x1f and \\x85, JSON Schema's \\ufeff: a fuzzer of either kind finds no text
    that the schema allows and the server refuses."""
    import re

    from serve.apis.schemas import NOT_BLANK

    with pytest.raises(ValueError, match="empty"):
        check_texts(["ok", blank])
    assert re.search(NOT_BLANK, blank) is None and check_texts(blank + "a") == blank + "a"


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


def test_serve_error_has_one_shape_and_survives_pickling():
    err = ServeError("overloaded", "model 'm' is at capacity; retry after 2 s", headers={"Retry-After": "2"})
    back = pickle.loads(pickle.dumps(err))
    assert (back.kind, back.status_code, back.headers) == ("overloaded", 429, {"Retry-After": "2"})
    resp = _serve_error(_request(), back)
    assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
    assert json.loads(resp.body) == {"error": {"message": "model 'm' is at capacity; retry after 2 s",
                                               "type": "overloaded", "param": None}}


def test_serve_options_validate():
    assert ServeOptions().backend is None  # as the artifact says
    with pytest.raises(ValidationError, match="needs backend: torch"):
        ServeOptions(precision="bnb-int8")
    with pytest.raises(ValidationError):
        ServeOptions(max_batch_size=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        ModelEntry(name="m", source="x", serve={"batch": 3})
    with pytest.raises(ValidationError):
        ServeOptions(max_queue_requests=0)
    assert ServeOptions(max_batch_tokens=4096).max_batch_tokens == 4096


def test_pass_budget_and_streams_follow_the_device(tiny_models):
    """Small passes, a short queue and two streams on a multi-core CPU; large passes, a queue of two batches
    and one stream on a GPU, unless set."""
    import copy

    assert ServeOptions().max_batch_tokens == 128
    assert ServeOptions(device="cuda").max_batch_tokens == 8192
    assert ServeOptions(device="cuda", max_batch_tokens=1024).max_batch_tokens == 1024
    assert ServeOptions().max_queue_requests == 24  # the queue's latency on a CPU
    assert ServeOptions(device="cuda", max_batch_size=64).max_queue_requests == 128  # a batch running, one forming
    assert ServeOptions(device="cuda", max_queue_requests=8).max_queue_requests == 8
    spec = copy.copy(tiny_models["fill-mask"].spec)

    def streams(**options: object) -> int:
        spec.options = ServeOptions(**options)
        return spec.streams()

    assert streams(threads=2) == 2 and streams(threads=8) == 2 and streams(threads=1) == 1
    assert streams(threads=8, streams=4) == 4 and streams(threads=2, device="cuda") == 1
    spec.backend = "torch"
    assert streams(threads=4) == 1
    spec.options = ServeOptions(threads=3)
    assert spec.threads() == 3


def test_settings_validate():
    with pytest.raises(ConfigError, match="litserve"):
        Settings(api_servers=2)
    with pytest.raises(ConfigError, match="max-queue-requests"):
        Settings(limits={"max_queue_requests": 0})
    with pytest.raises(ConfigError, match="drain"):
        Settings(drain_timeout=0)
    with pytest.raises(ConfigError, match="retry-after-hold"):
        Settings(retry_after_hold=-1)


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


def test_first_start_compresses_with_the_plain_recipe_unless_asked(monkeypatch, tmp_path):
    """serve builds a missing artifact with the plain recipe (no prune: block, no distillation by surprise);
    serve --compress, or the entry's serve.first_start: full, with the whole one, as `compress run NAME`."""
    import compress.pipeline
    import compress.sources
    from serve.models import compress_entry

    raw = {"name": "m", "source": "some/dir", "task": "embedding",
           "recipe": {"method": "int8", "optimize": "O2", "prune": {"fraction": 0.3, "recover_steps": 7}}}
    seen: list = []
    monkeypatch.setattr(compress.sources, "load_entry", lambda e: e.name)
    monkeypatch.setattr(compress.pipeline, "compress_model", lambda loaded, out, **kw: seen.append(kw["recipe"]))
    compress_entry(ModelEntry.model_validate(raw), tmp_path / "m-int8")
    compress_entry(ModelEntry.model_validate(raw), tmp_path / "m-int8", full_recipe=True)
    compress_entry(ModelEntry.model_validate({**raw, "serve": {"first_start": "full"}}), tmp_path / "m-int8")
    plain, *whole = seen
    assert (plain.method, plain.optimize, plain.prune) == ("int8", "O2", None)
    for recipe in whole:
        assert (recipe.method, recipe.optimize) == ("int8", "O2")
        assert recipe.prune is not None and (recipe.prune.fraction, recipe.prune.recover_steps) == (0.3, 7)
