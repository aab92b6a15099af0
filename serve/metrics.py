"""Prometheus metrics, shared by the HTTP process and the inference workers.

The server runs in several processes (HTTP servers, one inference worker per endpoint), so metrics
use prometheus_client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` must name an empty directory
before this module is imported (``serve.cli`` sets it up), and ``/metrics`` merges every process's
values.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUESTS = Counter("serve_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"])
REQUEST_SECONDS = Histogram("serve_request_seconds", "HTTP request latency, receipt to response",
                            ["endpoint"], buckets=LATENCY_BUCKETS)
QUEUE_SECONDS = Histogram("serve_queue_seconds", "time a request waited before its batch started",
                          ["endpoint"], buckets=LATENCY_BUCKETS)
BATCH_REQUESTS = Histogram("serve_batch_requests", "requests collected into one batch", ["endpoint"],
                           buckets=BATCH_BUCKETS)
BATCH_SIZE = Histogram("serve_batch_size", "sequences per forward pass", ["model"], buckets=BATCH_BUCKETS)
INFERENCE_SECONDS = Histogram("serve_inference_seconds", "forward pass time", ["model"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("serve_tokens", "tokens run through the model (special tokens included, padding not)", ["model"])
PADDING = Counter("serve_padding_tokens", "padding tokens added to batches", ["model"])
ITEMS = Counter("serve_items", "inputs answered", ["model"])


def render() -> tuple[bytes, str]:
    """The merged metrics of all processes, in Prometheus text format; (body, content type)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    if os.environ.get(ENV_DIR):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:  # single process (unit tests)
        from prometheus_client import REGISTRY

        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
