"""A real server's life under load: 429s when overloaded, live swap of a changed artifact, graceful drain."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from benchmarks.common.load import HttpClient, closed_loop_until_refused, run_load, scrape
from benchmarks.common.process import descendants, start_server, write_models
from compress.data import bbc_sentences
from tests.serve.conftest import packaged_entry, swap_under_load

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TEXTS = [" ".join(s.split()[:14]) for s in bbc_sentences(64, seed=5)]


def _body(i: int) -> dict:
    return {"model": "minilm", "input": TEXTS[i % len(TEXTS)]}


def _closed_loop_clients(url: str, n: int, seconds: float) -> tuple[list[threading.Thread], list]:
    """``n`` clients (not started) that send embeddings until refused or ``seconds`` pass, and the list
    their outcomes go to (benchmarks.common.load.closed_loop_until_refused)."""
    outcomes: list = []
    lock = threading.Lock()
    until = time.monotonic() + seconds
    return [threading.Thread(target=closed_loop_until_refused, args=(url, "/v1/embeddings", _body, until, outcomes,
                                                                     lock)) for _ in range(n)], outcomes


def test_overload_answers_429_in_the_error_shape(packaged_artifact, tmp_path):
    config = write_models(tmp_path / "models.yaml", [packaged_entry("minilm", packaged_artifact("minilm"),
                                                                    max_queue_requests=2)])
    server = start_server(config, tmp_path / "serve.log")
    try:
        patient = run_load(server.url, "/v1/embeddings", _body, concurrency=12, requests=60, max_seconds=120)
        held_patient = scrape(server.url).get("serve_held_refusals_total")
        report = run_load(server.url, "/v1/embeddings", _body, concurrency=12, requests=150, max_seconds=120,
                          honor_retry_after=False)
        held = scrape(server.url).get("serve_held_refusals_total", 0)
        status, headers, body = 0, {}, {}
        for _ in range(200):  # catch one 429 to read its shape while others keep the queue full
            load = threading.Thread(target=run_load, args=(server.url, "/v1/embeddings", _body),
                                    kwargs={"concurrency": 6, "requests": 12, "honor_retry_after": False})
            load.start()
            status, headers, body = HttpClient(server.url).request("POST", "/v1/embeddings", _body(0))
            load.join()
            if status == 429:
                break
        models = server.client().get("/v1/models")[1]
    finally:
        server.stop()
    assert set(report.statuses) <= {200, 429} and report.rejected > 0 and report.statuses.get(200, 0) > 0
    assert report.server_errors == 0
    # clients that wait as told are never held; those that ask again at once wait for their next 429
    assert patient.rejected > 0 and patient.server_errors == 0 and held_patient == 0
    assert held > 0 and report.rejected_p99_ms > 500
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert body["error"]["type"] == "overloaded" and "max_queue_requests 2" in body["error"]["message"]
    details = models["data"][0]["details"]
    assert details["max_queue_requests"] == 2 and details["rejected"] > 0


def test_live_swap_under_load_fails_nothing(packaged_artifact, tmp_path):
    artifact = tmp_path / "minilm-int8"
    shutil.copytree(packaged_artifact("minilm"), artifact)
    config = write_models(tmp_path / "models.yaml", [packaged_entry("minilm", artifact)])
    server = start_server(config, tmp_path / "serve.log", api_key="k", extra=("--watch", "0.5"))
    try:
        client = server.client()
        assert client.request("POST", "/v1/models/minilm/reload")[0] == 200
        assert server.client(api_key=None).request("POST", "/v1/models/minilm/reload")[0] == 401
        status, unchanged = client.post("/v1/models/minilm/reload", None)
        first, seen, report = swap_under_load(server.url, client, artifact, _body, concurrency=8, seconds=12,
                                              wait=30, api_key="k")
        card = client.get("/v1/models/minilm")[1]
        missing = client.post("/v1/models/nope/reload", None)
    finally:
        server.stop()
    assert status == 200 and unchanged["changed"] is False and unchanged["version"] == first
    assert seen != first and card["details"]["version"] == seen
    assert report.requests > 50 and report.errors == 0, report.statuses
    assert missing[0] == 404 and missing[1]["error"]["type"] == "model_not_found"


def test_sigterm_drains_without_cutting_a_request(packaged_artifact, tmp_path):
    config = write_models(tmp_path / "models.yaml", [packaged_entry("minilm", packaged_artifact("minilm"))])
    server = start_server(config, tmp_path / "serve.log", extra=("--drain-grace", "1.5", "--drain-timeout", "20"))
    clients, outcomes = _closed_loop_clients(server.url, 8, seconds=30)
    try:
        for c in clients:
            c.start()
        time.sleep(1.5)
        sent_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        ready_after = None
        probe = HttpClient(server.url, timeout=5)
        while ready_after is None and time.monotonic() - sent_at < 3:
            if probe.request("GET", "/ready", headers={"Connection": "close"})[0] == 503:
                ready_after = time.monotonic() - sent_at
        code = server.proc.wait(30)
        exited_after = time.monotonic() - sent_at
        for c in clients:
            c.join(35)
    finally:
        server.stop()
    assert ready_after is not None and ready_after < 1.0
    assert code == 0 and exited_after < 20
    statuses = [o[0] for o in outcomes]
    assert "cut" not in statuses, [o for o in outcomes if o[0] == "cut"][:5]
    # "reset": a fresh connection the kernel had queued when the listener closed; its request never reached us
    assert set(statuses) <= {200, "refused", "reset"} and statuses.count(200) > 8
    assert any(conn.lower() == "close" for status, conn in outcomes if status == 200)  # told to reconnect
    assert "drain" in server.log.read_text()


def _maps(pid: int) -> str:
    """The libraries process ``pid`` has mapped ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def test_a_killed_litserve_worker_stops_the_server_without_leaving_requests_hanging(packaged_artifact, tmp_path):
    config = write_models(tmp_path / "models.yaml", [packaged_entry("minilm", packaged_artifact("minilm"))])
    server = start_server(config, tmp_path / "serve.log", extra=("--host-kind", "litserve", "--timeout", "10"))
    clients, outcomes = _closed_loop_clients(server.url, 4, seconds=40)
    try:
        workers = [p for p in descendants(server.proc.pid) if "onnxruntime" in _maps(p)]
        for c in clients:
            c.start()
        time.sleep(1.5)
        killed_at = time.monotonic()
        for pid in workers:  # kill -9 the inference workers (one per route)
            os.kill(pid, signal.SIGKILL)
        code = server.proc.wait(30)
        exited_after = time.monotonic() - killed_at
        for c in clients:
            c.join(35)
        finished_after = time.monotonic() - killed_at
    finally:
        server.stop()
    assert workers and code not in (0, None) and exited_after < 10  # it stops, and says so, rather than hang
    assert not any(c.is_alive() for c in clients) and finished_after < 15  # no request waits for a dead worker
    assert [o for o in outcomes if o[0] == 200] and "died" in server.log.read_text()
