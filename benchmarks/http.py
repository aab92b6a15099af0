"""`python -m benchmarks http`: a real `serve` on 127.0.0.1 under bounded concurrent load.

Starts `serve` on a models.yaml model's artifact, sends ``requests`` single-input requests from
``concurrency`` closed-loop keep-alive clients (serve/loadtest.py), and measures the same artifact
in-process on the same texts (batch 32, same thread count) for the ratio HTTP / in-process. Rounds
alternate HTTP and in-process, so load from elsewhere on the machine hits both alike. The server is
always stopped at the end, and the whole run is bounded by ``timeout`` seconds.

``http.json`` (schema_version 1; keys are only ever added):

- ``schema_version``, ``cpu`` {``model``, ``isa``}, ``model``, ``task``, ``endpoint``, ``artifact``,
  ``method``, ``concurrency``, ``requests`` (asked per round), ``threads`` (server and in-process),
  ``max_batch_size`` (server), ``in_process_batch_size``, ``server_start_s``, ``timed_out`` (the
  ``timeout`` cut the run short), ``seconds`` (wall time)
- ``rounds``: one per round: ``round``, ``requests`` (answered or failed), ``errors`` (non-2xx answers
  and transport errors, as status 0), ``statuses`` {status: count}, ``seconds``, ``throughput``
  (successful requests/s), ``p50_ms``, ``p95_ms``, ``p99_ms`` (every request, errors included),
  ``client_cpu_s``, ``mean_batch_size`` (sequences per forward pass, from /metrics),
  ``server_rss_bytes``, ``server_peak_rss_bytes``, ``server_pss_bytes``, ``server_processes``
  (serve/process.py ``tree_memory``: summed over the server process and all its descendants, read
  after the round; peak = sum of each process's VmHWM), ``in_process_per_s``, ``http_vs_in_process``
- ``median``: the median over the rounds of each numeric key of a round above
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compress.artifact import Manifest
    from compress.catalog import ModelEntry
    from serve.process import ServeProcess

ENDPOINTS = {"embedding": "/v1/embeddings", "fill-mask": "/v1/fill-mask", "classification": "/v1/classify"}
IN_PROCESS_BATCH = 32
MEDIAN_KEYS = ("requests", "errors", "seconds", "throughput", "p50_ms", "p95_ms", "p99_ms", "client_cpu_s",
               "mean_batch_size", "server_rss_bytes", "server_peak_rss_bytes", "server_pss_bytes",
               "server_processes", "in_process_per_s", "http_vs_in_process")


@dataclass
class HttpOptions:
    model: str
    catalog: str = "models.yaml"
    artifact: Path | None = None  # default: the entry's artifact, made with its recipe when missing
    concurrency: int = 16
    requests: int = 2000
    rounds: int = 1
    threads: int | None = None  # default: all cores
    max_batch_size: int | None = None  # default: the entry's serve.max_batch_size
    port: int | None = None  # default: a free port
    timeout: float = 600.0
    in_process_seconds: float = 10.0
    texts: int = 512

    def __post_init__(self) -> None:
        for name in ("concurrency", "requests", "rounds", "texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("timeout", "in_process_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive (got {getattr(self, name)})")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1 (got {self.threads})")
        if self.port is not None and not 1024 <= self.port <= 65535:
            raise ValueError(f"--port must be in 1024..65535 (got {self.port})")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve_artifact(entry: ModelEntry, catalog: Path, override: Path | None = None) -> Path:
    """The artifact to serve: ``override``, else the entry's, compressed with its recipe when missing.

    Raises:
        ValueError: ``override`` is not an artifact directory.
    """
    from serve.config import artifact_dir
    from serve.models import compress_entry

    if override is not None:
        if not (override / "manifest.json").is_file():
            raise ValueError(f"{override} is not an artifact (no manifest.json); make one with `compress run`")
        return override.resolve()
    path = artifact_dir(entry, catalog.parent).resolve()
    if not (path / "manifest.json").is_file():
        _log(f"{entry.name}: no artifact at {path}; compressing it with its models.yaml recipe")
        compress_entry(entry, path)  # what `serve` would do on its first start
    return path


def bench_texts(manifest: Manifest, n: int) -> list[str]:
    """``n`` real medium-length texts for the artifact's task; fill-mask ones get a mask mid-text."""
    from benchmarks.workloads import texts_for

    texts = texts_for(manifest.tokenizer.split_chars, "medium", n)
    if manifest.task != "fill-mask":
        return texts
    mask = manifest.tokenizer.mask_token or "[MASK]"
    out = []
    for t in texts:
        words = t.split()
        words[len(words) // 2] = mask
        out.append(" ".join(words))
    return out


def request_body(task: str, model: str, text: str) -> dict[str, Any]:
    """One request of ``task`` for one text (serve/apis)."""
    return {"model": model, "input": text} if task == "embedding" else {"model": model, "inputs": text}


def _serve_entry(entry: ModelEntry, artifact: Path, threads: int, max_batch_size: int | None) -> dict[str, Any]:
    """The models.yaml entry the server gets: the catalog's, on ``artifact``, with the thread count set."""
    serve = entry.serve.model_dump(exclude_none=True)
    serve["threads"] = threads
    if max_batch_size is not None:
        serve["max_batch_size"] = max_batch_size
    return {**entry.model_dump(exclude_none=True, exclude={"serve", "artifact"}), "artifact": str(artifact),
            "serve": serve}


def _round(i: int, server: ServeProcess, opts: HttpOptions, task: str, artifact: Path, texts: list[str],
           threads: int, deadline: float) -> dict[str, Any]:
    """One HTTP run then one in-process run, both bounded by ``deadline`` (time.monotonic)."""
    from serve.loadtest import in_process_throughput, mean_batch_size, run_load, scrape

    path = ENDPOINTS[task]
    before = scrape(server.url)
    load = run_load(server.url, path, lambda k: request_body(task, opts.model, texts[k % len(texts)]),
                    concurrency=opts.concurrency, requests=opts.requests,
                    max_seconds=max(deadline - time.monotonic(), 1.0))
    batch = mean_batch_size(before, scrape(server.url), opts.model)
    mem = server.memory()
    _log(f"round {i}: {load.throughput:.1f} requests/s over HTTP, {load.errors} errors; in-process ...")
    per_s = in_process_throughput(str(artifact), texts, batch_size=IN_PROCESS_BATCH, threads=threads,
                                  seconds=min(opts.in_process_seconds, max(deadline - time.monotonic(), 1.0)))
    return {"round": i, **asdict(load), "mean_batch_size": batch, "server_rss_bytes": mem["rss"],
            "server_peak_rss_bytes": mem["peak_rss"], "server_pss_bytes": mem["pss"],
            "server_processes": mem["processes"], "in_process_per_s": per_s,
            "http_vs_in_process": load.throughput / per_s if per_s else 0.0}


def run_http(opts: HttpOptions) -> dict[str, Any]:
    """Serve the model, load it over HTTP and in-process, alternately; returns the report (keys above).

    Raises:
        compress.CompressError: unknown model name (the message lists the known ones), or the artifact
            could not be made.
        ValueError: bad options or ``--artifact``.
        serve.process.ServeStartError: the server did not start; its log is in the message.

    Example:
        >>> report = run_http(HttpOptions("minilm", concurrency=16, requests=500))  # doctest: +SKIP
    """
    from compress.artifact import read_manifest
    from compress.catalog import load_catalog
    from compress.cpu import cpu_model, detect_isa
    from compress.runtime import default_threads
    from serve.loadtest import run_load
    from serve.process import start_server, write_models

    t0 = time.monotonic()
    catalog = Path(opts.catalog)
    entry = load_catalog(catalog).get(opts.model)
    artifact = resolve_artifact(entry, catalog, opts.artifact)
    deadline = time.monotonic() + opts.timeout  # for serving and measuring; compressing is bounded by itself
    manifest = read_manifest(artifact)
    task, threads = manifest.task, opts.threads or default_threads()
    texts = bench_texts(manifest, opts.texts)
    report: dict[str, Any] = {
        "schema_version": 1, "cpu": {"model": cpu_model(), "isa": detect_isa()}, "model": opts.model, "task": task,
        "endpoint": ENDPOINTS[task], "artifact": str(artifact), "method": manifest.recipe.get("method"),
        "concurrency": opts.concurrency, "requests": opts.requests, "threads": threads,
        "max_batch_size": opts.max_batch_size or entry.serve.max_batch_size,
        "in_process_batch_size": IN_PROCESS_BATCH, "timed_out": False, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        config = write_models(Path(tmp) / "models.yaml",
                              [_serve_entry(entry, artifact, threads, opts.max_batch_size)])
        _log(f"starting serve for {opts.model} ({artifact})")
        started = time.monotonic()
        server = start_server(config, Path(tmp) / "serve.log", extra=("--no-compress",), port=opts.port,
                              wait_s=max(deadline - time.monotonic(), 1.0))
        try:
            report["server_start_s"] = round(time.monotonic() - started, 1)
            warm = 2 * opts.concurrency  # first connections and first batches, not counted
            run_load(server.url, ENDPOINTS[task], lambda k: request_body(task, opts.model, texts[k % len(texts)]),
                     concurrency=opts.concurrency, requests=warm, max_seconds=max(deadline - time.monotonic(), 1.0))
            for i in range(1, opts.rounds + 1):
                if time.monotonic() >= deadline:
                    break
                report["rounds"].append(_round(i, server, opts, task, artifact, texts, threads, deadline))
                last = report["rounds"][-1]
                if last["requests"] < opts.requests:
                    break  # the time limit cut this round short
        finally:
            server.stop()
    report["timed_out"] = len(report["rounds"]) < opts.rounds or report["rounds"][-1]["requests"] < opts.requests
    report["median"] = {k: statistics.median(r[k] for r in report["rounds"]) for k in MEDIAN_KEYS} \
        if report["rounds"] else {}
    report["seconds"] = round(time.monotonic() - t0, 1)
    return report


def markdown(report: dict[str, Any]) -> str:
    """A small table: one row per round and the median."""
    lines = [f"### HTTP load: {report['model']} ({report['task']}, POST {report['endpoint']})", "",
             f"Artifact `{report['artifact']}` ({report['method']}); {report['concurrency']} concurrent clients, "
             f"{report['requests']} one-input requests a round; {report['threads']} threads for the server and "
             f"in-process; server batches up to {report['max_batch_size']}, in-process batch "
             f"{report['in_process_batch_size']}. Server memory: summed over its "
             f"{report['median'].get('server_processes', 0):.0f} processes (peak = sum of each one's VmHWM)."
             + (" **Cut short by --timeout.**" if report["timed_out"] else ""), "",
             "| round | requests/s | p50 ms | p95 ms | p99 ms | errors | mean batch | server RSS MB | "
             "server peak RSS MB | in-process inputs/s | HTTP ÷ in-process |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(str(r["round"]), r) for r in report["rounds"]]
    if len(rows) > 1:
        rows.append(("median", report["median"]))
    for name, r in rows:
        lines.append(f"| {name} | {r['throughput']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['errors']:g} | {r['mean_batch_size']:.1f} | "
                     f"{r['server_rss_bytes'] / 1e6:.0f} | {r['server_peak_rss_bytes'] / 1e6:.0f} | "
                     f"{r['in_process_per_s']:.1f} | {r['http_vs_in_process']:.2f} |")
    return "\n".join(lines)


def write_reports(report: dict[str, Any], out: Path) -> None:
    """``http.json`` and ``http.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "http.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "http.md").write_text(markdown(report) + "\n")
