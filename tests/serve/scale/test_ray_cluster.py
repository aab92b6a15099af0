"""`serve --ray --ray-address`: joining a running Ray (here a local one on 127.0.0.1, started by the test),
where the replicas' metrics reach /metrics through the metrics board, labelled by replica."""

from __future__ import annotations

import time

import pytest

from benchmarks.common.process import start_server, write_models
from serve.hosts.ray_metrics import STALE_SECONDS, MetricsBoard, merge

TEXT = """# HELP serve_items_total inputs answered
# TYPE serve_items_total counter
serve_items_total{{model="m"}} {n}
# HELP serve_queue_requests requests admitted and not yet answered
# TYPE serve_queue_requests gauge
serve_queue_requests{{model="m"}} {q}
"""


def test_merge_labels_every_sample_with_its_replica():
    from prometheus_client.parser import text_string_to_metric_families

    body = merge({"m#a": TEXT.format(n=3, q=1), "m#b": TEXT.format(n=5, q=0)}).decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    items = {s.labels["replica"]: s.value for s in families["serve_items"].samples}
    assert items == {"m#a": 3.0, "m#b": 5.0}
    assert {s.labels["replica"] for s in families["serve_queue_requests"].samples} == {"m#a", "m#b"}
    assert body.count("# TYPE serve_queue_requests gauge") == 1


def test_board_forgets_a_replica_that_stopped_sending(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    board = MetricsBoard()
    board.put("m#a", "a")
    now[0] += STALE_SECONDS / 2
    board.put("m#b", "b")
    assert board.get() == {"m#a": "a", "m#b": "b"}
    now[0] += STALE_SECONDS * 0.75
    assert board.get() == {"m#b": "b"}


@pytest.mark.slow  # a local Ray and a server
def test_joined_cluster_serves_and_gathers_metrics(local_ray, tiny_embedder, tmp_path):
    from ray import serve

    from benchmarks.common.load import scrape

    entry, art = tiny_embedder
    config = write_models(tmp_path / "models.yaml", [{
        "name": "tiny-embed", "source": entry.source, "task": "embedding", "artifact": str(art),
        "serve": {"cpus": 0.5, "replicas": 2}}])
    address = local_ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:")
    proc = start_server(config, tmp_path / "serve.log", extra=("--ray", "--ray-address", address), wait_s=240)
    try:
        client = proc.client()
        for _ in range(6):
            assert client.post("/v1/embeddings", {"model": "tiny-embed", "input": ["a b", "c d e"]})[0] == 200
        deadline, items = time.monotonic() + 3 * STALE_SECONDS, {}
        while time.monotonic() < deadline and sum(items.values()) < 12:
            time.sleep(1)
            items = {k: v for k, v in scrape(proc.url).items() if k.startswith("serve_items_total")}
        assert sum(items.values()) == 12, items  # every answer, counted once, on whichever replica ran it
        assert all('replica="tiny-embed#' in k for k in items), items
    finally:
        proc.stop()
        serve.shutdown()
    assert "joined the Ray cluster at 127.0.0.1" in proc.log.read_text()
    with pytest.raises(ValueError):
        local_ray.get_actor("mlm-compress-metrics", namespace="mlm-compress")  # removed with the application
