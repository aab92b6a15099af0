"""The serving report's phases besides the load levels: the 429 probe, a variable-shape soak, a live swap
and a drain under load."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.common.endpoints import ENDPOINTS, Item, request_body

if TYPE_CHECKING:
    from benchmarks.common.process import ServeProcess

SEED = 14


def _probe(url: str, path: str, body: dict[str, Any], seconds: float, patient: bool) -> dict[str, list[float]]:
    """One client, alone in its process, timing its requests (ms) by status for ``seconds``; after a 429
    it waits the Retry-After when ``patient``, else 50 ms."""
    from benchmarks.common.load import HttpClient, retry_after_seconds

    client = HttpClient(url)
    out: dict[str, list[float]] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        status, headers, _ = client.request("POST", path, body)
        out.setdefault(str(status), []).append((time.perf_counter() - t0) * 1000)
        if status == 429:
            wait = retry_after_seconds(headers) if patient else 0.05
            time.sleep(min(wait, max(0.0, end - time.monotonic())))
    return out


def start_probe(url: str, path: str, body: dict[str, Any], seconds: float, patient: bool = True) -> Any:
    """Run :func:`_probe` in a process of its own, so the many load threads' GIL does not time it too;
    returns a future of {status: [ms, ...]}."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    future = pool.submit(_probe, url, path, body, seconds, patient)
    future.add_done_callback(lambda _: pool.shutdown(wait=False))
    return future


def soak(server: ServeProcess, model: str, task: str, texts: list[Item], seconds: float) -> dict[str, Any]:
    """16 clients for ``seconds``, each request 1 to 4 texts (shapes vary); the server's RSS before and after."""
    from benchmarks.common.load import run_load

    rng = np.random.default_rng(SEED)
    sizes = rng.integers(1, 5, size=len(texts))

    def body(k: int) -> dict[str, Any]:
        start = k % len(texts)
        return request_body(task, model, texts[start: start + int(sizes[start])] or texts[:1])

    rss = [server.memory()["rss"]]
    t0 = time.monotonic()
    samples = []
    while time.monotonic() - t0 < seconds:
        load = run_load(server.url, ENDPOINTS[task], body, concurrency=16, requests=10**9,
                        max_seconds=min(60.0, seconds - (time.monotonic() - t0)))
        samples.append({"t": round(time.monotonic() - t0, 1), "rss_bytes": server.memory()["rss"],
                        "throughput": load.throughput, "errors": load.errors})
    rss.append(server.memory()["rss"])
    return {"seconds": seconds, "rss_start_bytes": rss[0], "rss_end_bytes": rss[1],
            "rss_change": rss[1] / rss[0] - 1, "errors": sum(s["errors"] for s in samples), "samples": samples}


def replace_artifact(current: Path, note: str) -> None:
    """Rewrite the artifact as `compress --force` does: a full sibling copy (its manifest noted, so its
    version changes) renamed into place."""
    import json
    import os
    import shutil

    staging = current.with_name(current.name + ".new")
    shutil.copytree(current, staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest.setdefault("notes", []).append(note)
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    old = current.with_name(current.name + ".old")
    os.rename(current, old)
    os.rename(staging, current)
    shutil.rmtree(old)


def swap_under_load(server: ServeProcess, artifact: Path, model: str, task: str, texts: list[Item],
                    seconds: float = 40.0) -> dict[str, Any]:
    """Replace the served ``artifact`` while 16 clients send for ``seconds``: failed requests, and how long
    until the new version answers (``X-Model-Version``)."""
    from benchmarks.common.load import HttpClient, run_load

    probe, path = HttpClient(server.url, server.api_key), ENDPOINTS[task]
    before = probe.request("POST", path, request_body(task, model, texts[0]))[1]["x-model-version"]
    results: list[Any] = []
    load = threading.Thread(target=lambda: results.append(run_load(
        server.url, path, lambda k: request_body(task, model, texts[k % len(texts)]), concurrency=16,
        requests=10**9, max_seconds=seconds, api_key=server.api_key)))
    load.start()
    time.sleep(3.0)
    replace_artifact(artifact, "replaced under load by the serving benchmark")
    swapped, after = time.monotonic(), before
    while after == before and time.monotonic() - swapped < seconds - 4:
        time.sleep(0.2)
        after = probe.request("POST", path, request_body(task, model, texts[1]))[1]["x-model-version"]
    new_s = time.monotonic() - swapped if after != before else None
    load.join()
    report = results[0]
    return {"clients": 16, "seconds": seconds, "requests": report.requests, "errors": report.errors,
            "statuses": {str(k): v for k, v in report.statuses.items()}, "version_before": before,
            "version_after": after, "new_version_after_s": new_s}


def drain_under_load(server: ServeProcess, model: str, task: str, texts: list[Item]) -> dict[str, Any]:
    """SIGTERM while 16 clients send: /ready's 503, the requests' outcomes, the exit. Stops the server."""
    from benchmarks.common.load import HttpClient, closed_loop_until_refused

    outcomes: list[tuple[Any, str]] = []
    lock = threading.Lock()
    until = time.monotonic() + 60
    clients = [threading.Thread(target=closed_loop_until_refused, daemon=True, args=(
        server.url, ENDPOINTS[task], lambda k: request_body(task, model, texts[k % len(texts)]), until, outcomes,
        lock)) for _ in range(16)]
    for c in clients:
        c.start()
    time.sleep(2.0)
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    probe, ready_503_s = HttpClient(server.url, timeout=5), None
    while ready_503_s is None and time.monotonic() - sent < 5:
        try:
            if probe.request("GET", "/ready", headers={"Connection": "close"})[0] == 503:
                ready_503_s = time.monotonic() - sent
        except OSError:
            break
    code = server.proc.wait(60)
    exit_s = time.monotonic() - sent
    for c in clients:
        c.join(10)
    statuses = [o[0] for o in outcomes]
    return {"ready_503_s": ready_503_s, "exit_code": code, "exit_s": exit_s,
            "answered": sum(1 for s in statuses if s == 200), "refused": statuses.count("refused"),
            "reset": statuses.count("reset"), "cut": statuses.count("cut"),
            "other": sum(1 for s in statuses if s not in (200, "refused", "reset", "cut")),
            "told_to_close": sum(1 for s, c in outcomes if s == 200 and c.lower() == "close")}
