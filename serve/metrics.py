"""Prometheus metrics of the server and its engine.

The default host runs in one process and uses prometheus_client's default registry. A host that
runs the engine in other processes (LitServe) sets ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory before this module is imported, and ``/metrics`` merges every process's values (gauges
are then summed over live processes).
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUESTS = Counter("serve_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"])
REQUEST_SECONDS = Histogram("serve_request_seconds", "HTTP request latency, receipt to response",
                            ["endpoint"], buckets=LATENCY_BUCKETS)
QUEUE_SECONDS = Histogram("serve_queue_seconds", "time a request waited before its first forward pass",
                          ["model"], buckets=LATENCY_BUCKETS)
BATCH_SIZE = Histogram("serve_batch_size", "sequences per formed batch (cut into passes of similar length)",
                       ["model"], buckets=BATCH_BUCKETS)
PASS_SIZE = Histogram("serve_pass_size", "sequences per forward pass", ["model"], buckets=BATCH_BUCKETS)
INFERENCE_SECONDS = Histogram("serve_inference_seconds", "forward pass time", ["model"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("serve_tokens", "tokens run through the model (special tokens included, padding not)", ["model"])
PADDING = Counter("serve_padding_tokens", "padding tokens added to batches", ["model"])
ITEMS = Counter("serve_items", "inputs answered", ["model"])
QUEUE_REQUESTS = Gauge("serve_queue_requests", "requests admitted and not yet answered", ["model"],
                       multiprocess_mode="livesum")
QUEUE_TOKENS = Gauge("serve_queue_tokens", "tokens of the requests admitted and not yet answered", ["model"],
                     multiprocess_mode="livesum")
QUEUE_ITEMS = Gauge("serve_queue_items", "sequences waiting for a forward pass", ["model"],
                    multiprocess_mode="livesum")
REJECTIONS = Counter("serve_rejections", "requests refused with 429 because the model's queue was full", ["model"])
HELD_REFUSALS = Counter("serve_held_refusals", "429s held back because the client asked again before its "
                        "Retry-After (serve/backoff.py)")
MODEL_INFO = Gauge("serve_model_info", "the artifact version each model serves (1 per served version)",
                   ["model", "version"], multiprocess_mode="livemax")


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
