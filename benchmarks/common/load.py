"""A bounded load client for the server, and the in-process figure to compare it with (the serving
report's, the tests' and ``python -m benchmarks loadtest``'s).

Each client thread keeps one HTTP/1.1 connection open and sends its next request when the last one
is answered; the run stops after ``requests`` requests or ``max_seconds``, whichever comes first.
Standard library only, so it adds no dependency and costs the machine little.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

SPARSE = "sparse-embedding"

if TYPE_CHECKING:
    from pathlib import Path

    import onnxruntime as ort

    from benchmarks.common.endpoints import Item
    from compress.artifact import Manifest


class HttpClient:
    """A tiny JSON client over one keep-alive connection (not thread-safe: one per thread)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        u = urlsplit(base_url)
        self.host, self.port, self.timeout = u.hostname or "127.0.0.1", u.port or 80, timeout
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """(status, headers, parsed JSON or text); ``raw`` sends bytes as they are."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {**self.headers, **(headers or {})}
        for attempt in (0, 1):  # a kept-alive connection the server closed is reopened once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=data, headers=hdrs)
                resp = self._conn.getresponse()
                payload = resp.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        if resp.getheader("connection", "").lower() == "close":
            self.close()
        text = payload.decode("utf-8", errors="replace")
        ctype = resp.getheader("content-type", "")
        parsed: Any = json.loads(text) if ctype.startswith("application/json") and text else text
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        status, _, parsed = self.request("POST", path, body)
        return status, parsed

    def get(self, path: str) -> tuple[int, Any]:
        status, _, parsed = self.request("GET", path)
        return status, parsed

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class LoadReport:
    requests: int
    errors: int  # non-2xx answers and transport errors (status 0), 429s included
    seconds: float  # the load's window: until the last answer, or max_seconds when that came first
    throughput: float  # requests answered within the window per second (errors excluded): the goodput
    p50_ms: float  # latency of every request, errors included
    p95_ms: float
    p99_ms: float
    statuses: dict[int, int]
    client_cpu_s: float  # CPU time the load client itself used (it shares the machine with the server)
    ok_p50_ms: float = 0.0  # latency of the answered (200) requests
    ok_p99_ms: float = 0.0
    rejected: int = 0  # 429s
    rejected_p50_ms: float = 0.0  # how fast a 429 came back
    rejected_p99_ms: float = 0.0
    server_errors: int = 0  # 5xx answers


def _quantiles(values: list[float]) -> list[float]:
    """Percentiles 1..99 in ms (zeros when there are fewer than two values)."""
    if len(values) < 2:
        return [values[0] * 1000 if values else 0.0] * 99
    return [q * 1000 for q in statistics.quantiles(values, n=100)]


def retry_after_seconds(headers: dict[str, str]) -> float:
    """A 429's ``Retry-After`` (lower-cased header names), 1 s when it has none."""
    return float(headers.get("retry-after", "1") or 1)


def run_load(base_url: str, path: str, make_body: Callable[[int], Any], *, concurrency: int = 16,
             requests: int = 1000, max_seconds: float = 60.0, api_key: str | None = None,
             honor_retry_after: bool = True) -> LoadReport:
    """Send ``requests`` POSTs (``make_body(i)`` each) from ``concurrency`` closed-loop clients.

    Bounded twice: by the request count and by ``max_seconds``. A client answered 429 waits the
    ``Retry-After`` seconds before its next request when ``honor_retry_after`` (as HTTP clients such
    as OpenAI's SDK do); otherwise it sends the next one at once. Throughput counts the answers that
    came within ``max_seconds``: a request still out then (a 429 held back by the server, say) adds its
    latency to the report, not its wait to the window.
    """
    lock = threading.Lock()
    next_i = on_time = 0
    latencies: dict[int, list[float]] = {}
    deadline = time.perf_counter() + max_seconds

    def client() -> None:
        nonlocal next_i, on_time
        c = HttpClient(base_url, api_key)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    i, next_i = next_i, next_i + 1
                if i >= requests:
                    return
                t0 = time.perf_counter()
                retry_after = 0.0
                try:
                    status, headers, _ = c.request("POST", path, make_body(i))
                    if status == 429 and honor_retry_after:
                        retry_after = retry_after_seconds(headers)
                except OSError:
                    status = 0
                done = time.perf_counter()
                with lock:
                    latencies.setdefault(status, []).append(done - t0)
                    if status == 200 and done <= deadline:
                        on_time += 1
                if retry_after:
                    time.sleep(max(0.0, min(retry_after, deadline - time.perf_counter())))
        finally:
            c.close()

    t0, cpu0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 30)
    seconds = min(time.perf_counter(), deadline) - t0
    statuses = {k: len(v) for k, v in latencies.items()}
    everything = [x for v in latencies.values() for x in v]
    ok, rejected = latencies.get(200, []), latencies.get(429, [])
    q, q_ok, q_rej = _quantiles(everything), _quantiles(ok), _quantiles(rejected)
    return LoadReport(requests=len(everything), errors=len(everything) - len(ok), seconds=seconds,
                      throughput=on_time / seconds, p50_ms=q[49], p95_ms=q[94], p99_ms=q[98], statuses=statuses,
                      client_cpu_s=time.process_time() - cpu0, ok_p50_ms=q_ok[49], ok_p99_ms=q_ok[98],
                      rejected=len(rejected), rejected_p50_ms=q_rej[49], rejected_p99_ms=q_rej[98],
                      server_errors=sum(n for k, n in statuses.items() if k >= 500))


def scrape(base_url: str, api_key: str | None = None) -> dict[str, float]:
    """The server's /metrics as {'name{label="value",...}': value}, read by prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = HttpClient(base_url, api_key).get("/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out = {}
    for family in text_string_to_metric_families(str(text)):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def mean_batch_size(before: dict[str, float], after: dict[str, float], model: str,
                    metric: str = "serve_batch_size") -> float:
    """Mean of a histogram of ``model`` between two scrapes: sequences per formed batch by default,
    ``serve_pass_size`` for sequences per forward pass."""
    def delta(name: str) -> float:
        key = f'{name}{{model="{model}"}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    s, n = delta(f"{metric}_sum"), delta(f"{metric}_count")
    return s / n if n else 0.0


def closed_loop_until_refused(url: str, path: str, make_body: Callable[[int], Any], until: float,
                              outcomes: list[tuple[Any, str]], lock: threading.Lock) -> None:
    """One closed-loop client for drain checks, on a keep-alive connection; appends each request's outcome.

    Outcomes: ``(status, Connection header)`` for an answer; ``("refused", "")`` when a new connection
    is refused (the server stopped accepting: the client stops); ``("reset", error)`` when a connection
    that had not been answered yet broke (one the kernel had queued when the server closed its
    listening socket: its request never reached the server); ``("cut", error)`` when a connection that
    had been answered before broke with a request on it.
    """
    u = urlsplit(url)
    conn: http.client.HTTPConnection | None = None
    answered_before = False  # has this connection been answered at least once?
    i = 0
    while time.monotonic() < until:
        if conn is None:
            conn, answered_before = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80,
                                                               timeout=30), False
        outcome: tuple[Any, str]
        try:
            conn.request("POST", path, json.dumps(make_body(i)), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            outcome, answered_before = (resp.status, resp.getheader("connection", "") or ""), True
            if outcome[1].lower() == "close":
                conn.close()
                conn = None
        except ConnectionRefusedError:
            with lock:
                outcomes.append(("refused", ""))
            return
        except (OSError, http.client.HTTPException) as e:
            outcome = ("cut" if answered_before else "reset", type(e).__name__)
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            outcomes.append(outcome)
        i += 1


def in_process_throughput(artifact: str, texts: Sequence[Item], *, batch_size: int = 32, threads: int | None = None,
                          seconds: float = 10.0, streams: int = 1, plain: bool = False, task: str | None = None
                          ) -> float:
    """Inputs per second of the artifact run directly, text in, outputs out: tokenize, pad, run (a rerank
    input is a (query, passage) pair, encoded with its segment ids). For ``task`` sparse-embedding, each
    sparse vector's terms are then picked as the server answers a request without options (serve's
    ``sparse_terms``: every non-zero term, largest first).

    Same session settings as the server's onnxruntime backend; batches of ``batch_size``, ``streams`` of
    them at once, each on ``threads / streams`` intra-op threads, as the server runs its passes. With
    ``plain``, onnxruntime's own defaults instead (spin-waiting threads, memory arena), as a user's
    script gets them; only the thread count is set.
    """
    from concurrent.futures import ThreadPoolExecutor

    from benchmarks.common.texts import encode_items
    from compress.artifact import load_artifact
    from compress.session import default_threads, make_session
    from serve.engine.tasks import sparse_terms

    art = load_artifact(artifact)
    tok, max_len = art.tokenizer(), art.manifest.tokenizer.max_length
    per_stream = max(1, (threads or default_threads()) // streams)
    session = _plain_session(art.graph_path, per_stream) if plain else make_session(art.graph_path, "cpu", per_stream)
    names = [i.name for i in session.get_inputs()]
    sparse = _sparse_output(art.manifest, [o.name for o in session.get_outputs()]) if task == SPARSE else None

    def run(batch: Sequence[Item]) -> int:
        enc = encode_items(tok, batch, max_len)
        out = session.run(None, {n: enc[n] for n in names})
        for vec in out[sparse] if sparse is not None else ():
            sparse_terms(vec)
        return len(batch)

    batches = [texts[i: i + batch_size] for i in range(0, len(texts), batch_size)]
    run(batches[0])  # warm-up
    n, t0 = 0, time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        while time.perf_counter() - t0 < seconds:
            n += sum(pool.map(run, batches))
    return n / (time.perf_counter() - t0)


def _sparse_output(manifest: Manifest, outputs: list[str]) -> int:
    """The position among the graph's ``outputs`` of its sparse-embedding head's.

    Raises:
        ValueError: the artifact has no sparse-embedding head.
    """
    head = next((h for h in manifest.heads or [] if h.task == SPARSE), None)
    if head is None or head.output not in outputs:
        raise ValueError(f"{manifest.name} has no sparse-embedding head; compress it with --heads mlm,splade")
    return outputs.index(head.output)


def _plain_session(path: Path, threads: int) -> ort.InferenceSession:
    """An onnxruntime session with the library's defaults but for the thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
