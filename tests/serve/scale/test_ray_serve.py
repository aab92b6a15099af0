"""`serve --ray` end to end: a real process on a local Ray (127.0.0.1) serving a tiny embedder.

Both layouts: one model (its replicas answer HTTP themselves) and two models (an ingress in front of
the models' deployments). The same app as the native host: embeddings equal the engine's, bad input
is a 4xx in the one error shape (from the ingress and from a model replica alike), overflow is 429, no
key is 401, /v1/models describes Ray's replicas, a changed artifact rolls out failing nothing. The
server (and its Ray) is stopped by the fixture, whatever the tests did.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common.process import start_server, write_models
from benchmarks.e2e import is_error_shape

KEY = "ray-key-1"


LAYOUTS = {"one model": ("haproxy", 1), "two models": ("haproxy", 2), "one model, Serve's proxy": ("proxy", 1)}


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as in /proc/net/tcp*) on which something listens on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture(scope="module", params=list(LAYOUTS))
def ray_server(request, tiny_embedder, tmp_path_factory):
    entry, art = tiny_embedder
    tmp = tmp_path_factory.mktemp("serve-ray")
    shutil.copytree(art, tmp / "art")  # the last test replaces it
    serve = {"max_batch_size": 8, "max_items": 4, "max_queue_requests": 8, "cpus": 1, "replicas": 1}
    models = [{"name": "tiny-embed", "source": entry.source, "task": "embedding", "artifact": str(tmp / "art"),
               "serve": serve}]
    ingress, n_models = LAYOUTS[request.param]
    if n_models == 2:
        models.append({**models[0], "name": "tiny-other", "artifact": str(art), "serve": {**serve, "cpus": 0.5}})
    config = write_models(tmp / "models.yaml", models)
    proc = start_server(config, tmp / "serve.log", api_key=KEY, wait_s=240,
                        extra=("--ray", "--watch", "0.5", "--ray-ingress", ingress, "--drain-grace", "1"))
    proc.ingress = ingress
    try:
        yield proc
    finally:
        proc.stop()
    assert proc.proc.returncode == 130, "SIGTERM did not stop the server through its own shutdown"
    assert "started a local Ray on 127.0.0.1" in proc.log.read_text()
    assert "not only 127.0.0.1" not in proc.log.read_text()


@pytest.mark.slow  # a local Ray
def test_embeddings_equal_the_engine(ray_server, tiny_embedder):
    from tests.serve.scale.test_bulk import _engine_vectors

    entry, _ = tiny_embedder
    texts = ["the market rose", "a new film won the show"]
    client = ray_server.client()
    ref = _engine_vectors(entry, texts)
    served = [m["id"] for m in client.get("/v1/models")[1]["data"]]
    for name in served:
        status, headers, body = client.request("POST", "/v1/embeddings", {"model": name, "input": texts})
        assert status == 200 and body["model"] == name, body
        got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= 0.9999
        assert len(headers.get("x-model-version", headers.get("X-Model-Version", ""))) == 12

    from benchmarks.common.load import scrape

    served = scrape(ray_server.url, KEY)  # the replicas' engine figures, merged by the ingress
    assert served.get('serve_items_total{model="tiny-embed"}', 0) >= len(texts)

    status, models = client.get("/v1/models")
    assert status == 200 and models["data"][0]["details"]["host"] == "ray"
    assert models["data"][0]["details"]["replicas"] == 1
    assert len(models["data"][0]["details"]["version"]) == 12
    status, _, body = client.request("POST", "/v1/models/tiny-embed/reload")
    assert status == 422 and is_error_shape(body) and "rolls out by itself" in body["error"]["message"]


@pytest.mark.slow  # a local Ray
def test_the_http_front_listens_where_the_server_does(ray_server):
    """HAProxy (the default) in front of replicas that answer HTTP themselves, its side listeners on the
    server's 127.0.0.1 as well; or Ray Serve's proxy when asked."""
    import re
    import urllib.request

    log = ray_server.log.read_text()
    if ray_server.ingress == "proxy":
        assert "HTTP front: Ray Serve's proxy" in log
        return
    found = re.search(r"HTTP front: HAProxy.*stats on 127\.0\.0\.1:(\d+)/stats", log)
    assert found, log[-2000:]
    stats = int(found.group(1))
    assert listening_addresses(stats) == {"0100007F"}  # 127.0.0.1 only, not every interface
    with urllib.request.urlopen(f"http://127.0.0.1:{stats}/stats", timeout=10) as r:
        assert r.status == 200 and b"HAProxy" in r.read()


def test_haproxy_config_binds_on_the_servers_host():
    from serve.hosts.ray_haproxy import bind_on

    config = ("listen stats\n  bind *:8404\nfrontend prometheus\n    bind :9101\n"
              "frontend http\n    bind 127.0.0.1:8000\n")
    local = bind_on(config, "127.0.0.1")
    assert "bind 127.0.0.1:8404" in local and "bind 127.0.0.1:9101" in local and "bind 127.0.0.1:8000" in local
    assert "*:" not in local and "bind :" not in local
    assert "bind [::1]:8404" in bind_on(config, "::1")
    assert bind_on(config, "0.0.0.0") == config  # every interface was asked for


@pytest.mark.slow  # a local Ray
def test_bad_input_is_4xx_in_the_error_shape(ray_server):
    client = ray_server.client()
    cases = [({"model": "tiny-embed", "input": ["a"] * 5}, 422, "input"),  # refused by the model's replica
             ({"model": "nope", "input": "a"}, 404, "model"),  # refused by the ingress (or the only model's app)
             ({"model": "tiny-embed"}, 422, None)]
    for body, want, param in cases:
        status, got = client.post("/v1/embeddings", body)
        assert status == want and is_error_shape(got), (body, status, got)
        if param:
            assert got["error"]["param"] == param
    status, _, got = client.request("POST", "/v1/embed", raw=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and is_error_shape(got)


@pytest.mark.slow  # a local Ray
def test_overflow_is_429_in_the_error_shape(ray_server):
    """Past the engine's queue (one model) or Ray's max_ongoing_requests and max_queued_requests (8 + 8, behind
    the ingress), requests are refused at once, not left waiting."""
    from concurrent.futures import ThreadPoolExecutor

    body = {"model": "tiny-embed", "input": ["the market rose and the bank said it was a new year"] * 4}

    def burst(_: int) -> list[tuple[int, dict, object]]:
        client, out = ray_server.client(), []
        for _ in range(6):
            status, headers, got = client.request("POST", "/v1/embeddings", body)
            out.append((status, headers, got))
        client.close()
        return out

    with ThreadPoolExecutor(64) as pool:
        answers = [a for batch in pool.map(burst, range(64)) for a in batch]
    statuses = {s for s, _, _ in answers}
    refused = [(h, b) for s, h, b in answers if s == 429]
    assert statuses <= {200, 429} and 200 in statuses, statuses
    assert refused, "64 clients at once never overflowed 8 ongoing + 8 queued"
    headers, got = refused[0]
    assert is_error_shape(got) and got["error"]["type"] == "overloaded" and int(headers.get("retry-after", 0)) >= 1


@pytest.mark.slow  # a local Ray
def test_no_key_is_401(ray_server):
    status, body = ray_server.client(api_key=None).post("/v1/embeddings", {"model": "tiny-embed", "input": "a"})
    assert status == 401 and is_error_shape(body) and body["error"]["type"] == "unauthorized"
    assert ray_server.client(api_key=None).get("/health")[0] == 200


@pytest.mark.slow  # a local Ray
def test_end_to_end_check_passes(ray_server):
    """The check `python -m benchmarks e2e --host-kind ray` runs on the default models.yaml, here on the tiny
    embedder: every served model against its fp32 original over HTTP, the bad requests, the key."""
    from benchmarks.e2e import check_server, markdown

    report = check_server(ray_server, ray_server.config, n=24, host_kind="ray")
    assert len(report.checks) == len(ray_server.client().get("/v1/models")[1]["data"])
    assert all(c.n == 24 and c.value >= 0.9999 and c.worst is not None and c.worst >= 0.9999 for c in report.checks), \
        markdown(report)
    assert len(report.edges) == 10 and report.passed, markdown(report)


@pytest.mark.slow  # a local Ray
def test_app_builder_for_a_serve_config(tiny_embedder, tmp_path):
    """What a RayService's serveConfigV2 imports: the same application, from a models.yaml path."""
    from serve.config import ConfigError
    from serve.hosts.ray import app_builder
    from serve.raycluster import import_ray

    import_ray(local=True)
    from ray.serve import Application

    entry, art = tiny_embedder
    config = write_models(tmp_path / "models.yaml", [{"name": "tiny-embed", "source": entry.source,
                                                      "artifact": str(art), "serve": {"replicas": 2}}])
    assert isinstance(app_builder({"config": str(config)}), Application)
    with pytest.raises(ConfigError, match="no artifact"):
        app_builder({"config": str(write_models(tmp_path / "bad.yaml", [{"name": "x", "source": "y"}]))})


@pytest.mark.slow  # a local Ray
def test_changed_artifact_rolls_out_under_load_failing_nothing(ray_server):
    """The replica swaps live on a changed artifact (as `compress --force` renames one into place)."""
    from tests.serve.conftest import swap_under_load

    artifact = ray_server.config.parent / "art"
    client = ray_server.client()
    body = {"model": "tiny-embed", "input": "the market rose"}
    first, seen, report = swap_under_load(ray_server.url, client, artifact, lambda k: body, concurrency=4,
                                          seconds=15, wait=40, api_key=KEY)
    assert seen != first
    assert client.get("/v1/models/tiny-embed")[1]["details"]["version"] == seen
    assert report.requests > 20 and report.errors == 0, report.statuses


@pytest.mark.slow  # a local Ray
def test_ingress_is_ready_only_while_every_model_has_a_running_replica(tiny_embedder):
    from compress.catalog import ModelEntry
    from serve.hosts.ray import IngressForwarder
    from serve.models import prepare_model

    entry, _ = tiny_embedder
    model = prepare_model(ModelEntry.model_validate(entry.model_dump()), Path(entry.artifact).parent,
                          compress_missing=False)
    engine = IngressForwarder([model], {})
    assert engine.ready() == (False, "the model deployments' state is not known yet")
    engine.running = {"tiny-embed": 0, "ingress": 1}
    engine.messages = {"tiny-embed": "1 replica could not be scheduled: 4 CPUs asked, 2 in the cluster"}
    ok, why = engine.ready()
    assert not ok and why.startswith("no running replica of tiny-embed") and "could not be scheduled" in why
    engine.running = {"tiny-embed": 2, "ingress": 1}
    assert engine.ready() == (True, "")
