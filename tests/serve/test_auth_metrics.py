"""API key on and off; batching across concurrent clients, visible in /metrics."""

from __future__ import annotations

import pytest

from benchmarks.common.load import mean_batch_size, run_load, scrape
from compress.data import bbc_sentences
from tests.serve.conftest import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("wrong", 401), (API_KEY, 200)])
def test_api_key_required(server, key, status):
    got, headers, data = server.client(api_key=key).request("POST", "/v1/embed", {"inputs": "hello"})
    assert got == status
    if status == 401:
        assert data["error"]["type"] == "unauthorized" and "Authorization: Bearer" in data["error"]["message"]
        assert headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("path", "status"), [("/health", 200), ("/ready", 200), ("/live", 200),
                                              ("/openapi.json", 200), ("/metrics", 401), ("/v1/models", 401)])
def test_open_and_protected_paths(server, path, status):
    assert server.client(api_key=None).get(path)[0] == status


def test_health_says_ok_once_warmed_up(server):
    assert server.client(api_key=None).get("/health") == (200, {"status": "ok"})


def test_no_key_configured_means_open(open_server):
    status, data = open_server.client(api_key=None).post("/v1/embeddings", {"model": "minilm", "input": "hi"})
    assert status == 200 and len(data["data"][0]["embedding"]) == 384
    assert open_server.client(api_key=None).get("/metrics")[0] == 200


def test_concurrent_requests_are_batched(server):
    texts = [" ".join(s.split()[:10]) for s in bbc_sentences(64, seed=11)]
    before = scrape(server.url, API_KEY)
    report = run_load(server.url, "/v1/embed", lambda i: {"inputs": texts[i % len(texts)]}, concurrency=16,
                      requests=192, max_seconds=90, api_key=API_KEY)
    after = scrape(server.url, API_KEY)
    assert report.requests == 192 and report.errors == 0, report.statuses

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert mean_batch_size(before, after, "minilm") > 1.5
    assert delta('serve_requests_total{endpoint="/v1/embed",status="200"}') == 192
    assert delta('serve_queue_seconds_count{model="minilm"}') == 192
    assert delta('serve_items_total{model="minilm"}') == 192
    assert delta('serve_tokens_total{model="minilm"}') >= 192 * 3
    assert delta('serve_request_seconds_count{endpoint="/v1/embed"}') == 192


def test_metrics_cover_status_and_latency(server):
    c = server.client()
    c.post("/v1/embed", {"inputs": ""})  # a 422
    text = c.get("/metrics")[1]
    for name in ("serve_requests_total", "serve_request_seconds_bucket", "serve_queue_seconds_bucket",
                 "serve_batch_size_bucket", "serve_pass_size_bucket", "serve_inference_seconds_bucket",
                 "serve_tokens_total", "serve_padding_tokens_total", 'serve_queue_requests{model="minilm"}',
                 'serve_queue_tokens{model="minilm"}', "serve_model_info{"):
        assert name in text, name
    assert 'serve_requests_total{endpoint="/v1/embed",status="422"}' in text
