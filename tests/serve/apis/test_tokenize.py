"""``/v1/tokenize`` and ``/v1/detokenize`` against a real server (tests/serve/apis/conftest.py): the ids the
model runs on, offsets into the text, counts, prompts, and ids back to text."""

from __future__ import annotations

import pytest

from tests.serve.apis.conftest import MAX_LENGTH

pytestmark = pytest.mark.slow


def test_tokenize_gives_what_the_model_runs_on(encoder_server):
    client = encoder_server.client()
    texts = ["the film was new", "music, and A BAND!"]
    status, data = client.post("/v1/tokenize", {"model": "embed", "inputs": texts})
    assert status == 200 and data["max_length"] == MAX_LENGTH and data["truncate"] is True
    for text, got in zip(texts, data["results"], strict=True):
        assert got["text"] == text and got["count"] == len(got["ids"]) == len(got["tokens"]) == len(got["offsets"])
        assert got["tokens"][0] == "[CLS]" and got["tokens"][-1] == "[SEP]" and got["offsets"][0] == [0, 0]
        for token, (start, end) in zip(got["tokens"][1:-1], got["offsets"][1:-1], strict=True):
            assert text[start:end].lower() == token.removeprefix("##") or token == "[UNK]"
    embed = client.post("/v1/embed", {"model": "embed", "inputs": texts})[1]
    assert embed["usage"]["prompt_tokens"] == data["usage"]["prompt_tokens"] == sum(r["count"] for r in data["results"])
    bare = client.post("/v1/tokenize", {"model": "embed", "inputs": texts[0], "add_special_tokens": False})[1]
    assert bare["results"][0]["ids"] == data["results"][0]["ids"][1:-1]
    long = client.post("/v1/tokenize", {"model": "embed", "inputs": "the " * 40})[1]
    assert long["results"][0]["count"] == 42  # never cut: the count says it is too long


def test_tokenize_applies_the_prompt_and_refuses_an_unknown_one(encoder_server):
    client = encoder_server.client()
    status, data = client.post("/v1/tokenize", {"model": "classify", "inputs": "the film", "prompt_name": "query"})
    assert status == 200 and data["results"][0]["text"] == "query: the film"
    status, data = client.post("/v1/tokenize", {"model": "classify", "inputs": "x", "prompt_name": "nope"})
    assert status == 400 and data["error"]["type"] == "unsupported" and data["error"]["param"] == "prompt_name"


def test_detokenize_and_model_choice(encoder_server):
    client = encoder_server.client()
    ids = client.post("/v1/tokenize", {"model": "fill", "inputs": "the film was [MASK]"})[1]["results"][0]["ids"]
    assert client.post("/v1/detokenize", {"model": "fill", "ids": ids})[1]["text"] == "the film was"
    keep = client.post("/v1/detokenize", {"model": "fill", "ids": ids, "skip_special_tokens": False})[1]["text"]
    assert keep == "[CLS] the film was [MASK] [SEP]"
    status, data = client.post("/v1/detokenize", {"model": "fill", "ids": [5, 100000]})
    assert status == 400 and data["error"]["param"] == "ids.1"
    status, data = client.post("/v1/tokenize", {"inputs": "x"})  # several models: name one
    assert status == 422 and data["error"]["param"] == "model"
    assert client.post("/v1/tokenize", {"model": "nope", "inputs": "x"})[0] == 404
    assert client.post("/v1/tokenize", {"model": "embed", "inputs": "x", "add_special_tokens": 1})[0] == 422
