"""`python -m benchmarks loadtest`: bounded load against a server you started, beside in-process.

    python -m benchmarks loadtest --url http://127.0.0.1:8000 --model minilm --concurrency 16 --requests 2000 \\
        --compare-artifact artifacts/minilm-int8 --rounds 3

Per round: closed-loop keep-alive clients on short BBC sentences (:func:`benchmarks.common.load.run_load`),
the mean batch size from ``/metrics``, and with ``--compare-artifact`` the same artifact in-process on
the same sentences; HTTP and in-process alternate so that other load on the machine hits both alike.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.common.load import in_process_throughput, mean_batch_size, run_load, scrape


@dataclass
class LoadtestOptions:
    url: str = "http://127.0.0.1:8000"
    model: str = "minilm"
    path: str = "/v1/embed"
    concurrency: int = 16
    requests: int = 2000
    max_seconds: float = 60.0
    api_key: str | None = None
    compare_artifact: str | None = None
    batch_size: int = 32
    threads: int | None = None
    rounds: int = 1


def _sentences(n: int) -> list[str]:
    from compress.data import bbc_sentences

    return [" ".join(s.split()[:12]) for s in bbc_sentences(n, seed=7)]


def _round(opts: LoadtestOptions, texts: list[str]) -> dict[str, Any]:
    key = "input" if opts.path.endswith("embeddings") else "inputs"
    before = scrape(opts.url, opts.api_key)
    report = run_load(opts.url, opts.path, lambda i: {"model": opts.model, key: texts[i % len(texts)]},
                      concurrency=opts.concurrency, requests=opts.requests, max_seconds=opts.max_seconds,
                      api_key=opts.api_key)
    r: dict[str, Any] = {"http": asdict(report),
                         "mean_batch_size": mean_batch_size(before, scrape(opts.url, opts.api_key), opts.model)}
    if opts.compare_artifact:
        r["in_process_per_s"] = in_process_throughput(opts.compare_artifact, texts, batch_size=opts.batch_size,
                                                      threads=opts.threads)
        r["http_vs_in_process"] = report.throughput / r["in_process_per_s"]
    return r


def run(opts: LoadtestOptions) -> dict[str, Any]:
    """Every round, and the medians of HTTP answers/s (and of in-process, and their ratio, when compared)."""
    texts = _sentences(512)
    rounds = [_round(opts, texts) for _ in range(opts.rounds)]
    result: dict[str, Any] = {"rounds": rounds,
                              "median_http_per_s": statistics.median(r["http"]["throughput"] for r in rounds)}
    if opts.compare_artifact:
        result["median_in_process_per_s"] = statistics.median(r["in_process_per_s"] for r in rounds)
        result["median_http_vs_in_process"] = statistics.median(r["http_vs_in_process"] for r in rounds)
    return result
