"""Every bad input gets its documented 4xx in the one error shape, and the server stays up."""

from __future__ import annotations

import json

import pytest

from tests.serve.conftest import LIMITS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEQ = "EVQLVESGGGLVQPGGSLRLSCAAS"

# (id, path, JSON body or raw bytes, extra headers, status, type, param, words the message must contain)
CASES = [
    ("empty string", "/v1/embed", {"inputs": ""}, None, 422, "invalid_request", "inputs", ["empty"]),
    ("empty list", "/v1/embed", {"inputs": []}, None, 422, "invalid_request", "inputs", ["empty list"]),
    ("not a string", "/v1/embed", {"inputs": 5}, None, 422, "invalid_request", "inputs", ["string"]),
    ("non-string item", "/v1/classify", {"inputs": [SEQ, 3]}, None, 422, "invalid_request", "inputs", ["item 1"]),
    ("null inputs", "/v1/embed", {"inputs": None}, None, 422, "invalid_request", "inputs", ["string"]),
    ("missing field", "/v1/embed", {"model": "minilm"}, None, 422, "invalid_request", "inputs", ["required"]),
    ("unknown field", "/v1/embed", {"input": "hi"}, None, 422, "invalid_request", "input", ["unknown field"]),
    ("no mask token", "/v1/fill-mask", {"inputs": [SEQ + "[MASK]", SEQ]}, None, 422, "invalid_request", "inputs",
     ["inputs[1]", "[MASK]"]),
    ("top_k 0", "/v1/fill-mask", {"inputs": SEQ + "[MASK]", "top_k": 0}, None, 422, "invalid_request", "top_k",
     ["greater than or equal to 1"]),
    ("top_k 51", "/v1/fill-mask", {"inputs": SEQ + "[MASK]", "top_k": 51}, None, 422, "invalid_request", "top_k",
     ["50"]),
    ("too many items", "/v1/embed", {"inputs": ["a b"] * (LIMITS["minilm_max_items"] + 1)}, None, 422,
     "invalid_request", "inputs", [f"at most {LIMITS['minilm_max_items']}", "split"]),
    ("input too long", "/v1/fill-mask", {"inputs": "A" * 700 + "[MASK]"}, None, 413, "input_too_long", "inputs",
     ["703 tokens", "at most 512"]),
    ("body too large", "/v1/embed", {"inputs": "x" * (LIMITS["max_body_bytes"] + 10)}, None, 413,
     "payload_too_large", None, [str(LIMITS["max_body_bytes"])]),
    ("unknown model", "/v1/embed", {"model": "bert-9000", "inputs": "hi"}, None, 404, "model_not_found", "model",
     ["bert-9000", "antiberty, antiberty-species, minilm"]),
    ("model of another task", "/v1/classify", {"model": "minilm", "inputs": "hi"}, None, 404, "model_not_found",
     "model", ["not served at /v1/classify", "antiberty-species"]),
    ("broken JSON", "/v1/embed", b'{"inputs": "hi"', None, 400, "invalid_json", None, ["not valid JSON"]),
    ("JSON array body", "/v1/embed", b'["hi"]', None, 400, "invalid_json", None, ["JSON object"]),
    ("no content type", "/v1/embed", b'{"inputs": "hi"}', {"Content-Type": ""}, 400, "invalid_json", None,
     ["Content-Type: application/json"]),
    ("lone surrogate", "/v1/classify", b'{"inputs": "EVQ\\ud800L"}', None, 422, "invalid_request", "inputs",
     ["UTF-8"]),
    ("token arrays", "/v1/embeddings", {"model": "minilm", "input": [[1, 2, 3]]}, None, 422, "invalid_request",
     "input", ["token-id"]),
    ("bad encoding_format", "/v1/embeddings", {"model": "minilm", "input": "hi", "encoding_format": "int8"}, None,
     422, "invalid_request", "encoding_format", ["float"]),
    ("wrong dimensions", "/v1/embeddings", {"model": "minilm", "input": "hi", "dimensions": 64}, None, 400,
     "unsupported", "dimensions", ["384"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(server, case):
    _, path, body, headers, status, kind, param, words = case
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    got, resp_headers, data = server.client().request("POST", path, raw=raw, headers=headers)
    assert got == status, data
    assert set(data) == {"error"} and set(data["error"]) == {"message", "type", "param"}
    assert data["error"]["type"] == kind and data["error"]["param"] == param
    for w in words:
        assert w in data["error"]["message"]
    assert resp_headers.get("x-request-id")


@pytest.mark.parametrize(("method", "path", "status", "kind"), [
    ("GET", "/v1/embed", 405, "method_not_allowed"),
    ("POST", "/v2/nothing", 404, "not_found"),
    ("GET", "/v1/models/bert-9000", 404, "model_not_found"),
])
def test_wrong_route(server, method, path, status, kind):
    got, _, data = server.client().request(method, path, raw=b"{}" if method == "POST" else None)
    assert got == status and data["error"]["type"] == kind


def test_unserved_task_answers_404_listing_models(open_server):
    status, data = open_server.client().post("/v1/classify", {"inputs": "hi"})
    assert status == 404 and data["error"]["type"] == "model_not_found"
    message = data["error"]["message"]
    assert "no classification model is served" in message and "minilm, tiny" in message


def test_server_survives_bad_inputs(server):
    c = server.client()
    for _, path, body, headers, *_ in CASES:  # again, back to back on one connection
        c.request("POST", path, raw=body if isinstance(body, bytes) else json.dumps(body).encode(), headers=headers)
    assert c.get("/health")[0] == 200
    status, data = c.post("/v1/fill-mask", {"inputs": SEQ + "[MASK]"})
    assert status == 200 and data["results"][0]["masks"][0]["tokens"]
    assert server.proc.poll() is None
    assert "Traceback" not in server.log.read_text()
