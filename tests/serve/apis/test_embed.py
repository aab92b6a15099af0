"""``/v1/embeddings`` through the OpenAI Python client and ``/v1/embed``: Matryoshka ``dimensions``, base64,
prompts, against a real server (tests/serve/apis/conftest.py)."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.conftest import SENTENCES
from tests.serve.apis.conftest import MATRYOSHKA

pytestmark = pytest.mark.slow
TEXTS = SENTENCES[:3]


@pytest.fixture(scope="module")
def client(encoder_server):
    from openai import OpenAI

    return OpenAI(base_url=f"{encoder_server.url}/v1", api_key="unused", max_retries=0)


def _vector(embedding: list[float] | str) -> np.ndarray:
    """The client hands base64 back as it came when asked for it (it decodes only its own default)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.array(embedding)


def _full(encoder_server, **extra) -> np.ndarray:
    status, data = encoder_server.client().post("/v1/embed", {"model": "embed", "inputs": TEXTS, **extra})
    assert status == 200, data
    return np.array(data["embeddings"])


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_matryoshka_dimensions_cut_and_normalise(client, encoder_server, encoding_format):
    full = _full(encoder_server, normalize=False)
    assert full.shape == (3, 64)
    for dims in MATRYOSHKA:
        got = client.embeddings.create(model="embed", input=TEXTS, dimensions=dims, encoding_format=encoding_format)
        vectors = np.array([_vector(d.embedding) for d in got.data])
        want = full[:, :dims] / np.linalg.norm(full[:, :dims], axis=1, keepdims=True)
        assert vectors.shape == (3, dims) and np.allclose(vectors, want, atol=1e-5)
        assert got.usage.prompt_tokens == sum(len(s.split()) + 2 for s in TEXTS)
    whole = client.embeddings.create(model="embed", input=TEXTS, dimensions=64, encoding_format=encoding_format)
    assert np.allclose([_vector(d.embedding) for d in whole.data], full, atol=1e-5)  # the full size: as given


def test_other_dimensions_are_a_400_that_lists_the_sizes(client, encoder_server):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as e:
        client.embeddings.create(model="embed", input=TEXTS, dimensions=20)
    error = e.value.body.get("error", e.value.body)
    assert error["type"] == "unsupported" and error["param"] == "dimensions"
    assert "64" in error["message"] and "32, 16" in error["message"]
    status, data = encoder_server.client().post("/v1/embed", {"model": "embed", "inputs": "a", "dimensions": 65})
    assert status == 400 and data["error"]["param"] == "dimensions"


def test_embed_takes_dimensions_and_raw_base64(encoder_server):
    status, data = encoder_server.client().post("/v1/embed", {"model": "embed", "inputs": TEXTS, "dimensions": 16})
    assert status == 200 and data["dimensions"] == 16
    assert np.allclose(np.linalg.norm(data["embeddings"], axis=1), 1, atol=1e-5)
    status, data = encoder_server.client().post("/v1/embeddings", {"model": "embed", "input": TEXTS[0],
                                                                   "encoding_format": "base64"})
    vector = np.frombuffer(base64.b64decode(data["data"][0]["embedding"]), dtype="<f4")
    assert status == 200 and vector.shape == (64,) and np.allclose(vector, _full(encoder_server)[0], atol=1e-6)


def test_prompts_go_before_each_input(client, encoder_server):
    status, data = encoder_server.client().post("/v1/embed", {"model": "embed", "inputs": TEXTS[0],
                                                              "prompt_name": "query"})
    plain = encoder_server.client().post("/v1/embed", {"model": "embed", "inputs": "query: " + TEXTS[0]})[1]
    assert status == 200 and np.allclose(data["embeddings"], plain["embeddings"], atol=1e-6)
    assert data["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]
    got = client.embeddings.create(model="embed", input=TEXTS[0], extra_body={"prompt_name": "passage"})
    passage = encoder_server.client().post("/v1/embed", {"model": "embed", "inputs": "passage: " + TEXTS[0]})[1]
    assert np.allclose(got.data[0].embedding, passage["embeddings"][0], atol=1e-5)
    status, data = encoder_server.client().post("/v1/embed", {"model": "embed", "inputs": "a", "prompt_name": "doc"})
    assert status == 400 and data["error"]["param"] == "prompt_name" and "'query'" in data["error"]["message"]


def test_left_truncation_keeps_the_prompt_and_the_end(encoder_server):
    from tests.serve.apis.conftest import MAX_LENGTH

    words = SENTENCES[5].split() * 4  # in the tiny vocabulary: a token a word; the prompt: 2 unknown tokens
    room = MAX_LENGTH - 2 - 2

    def vector(model: str, text: str) -> list[float]:
        status, data = encoder_server.client().post("/v1/embed", {"model": model, "inputs": text,
                                                                  "prompt_name": "query"})
        assert status == 200 and data["usage"]["prompt_tokens"] == min(MAX_LENGTH, len(text.split()) + 4), data
        return data["embeddings"][0]

    assert np.allclose(vector("embed-left", " ".join(words)), vector("embed", " ".join(words[-room:])), atol=1e-6)
    assert np.allclose(vector("embed", " ".join(words)), vector("embed", " ".join(words[:room])), atol=1e-6)
