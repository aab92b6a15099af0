"""The quick loop's end-to-end check: a real `serve` process (the native host) on the tiny models' artifacts.

The servers on the real packaged models (tests/serve/conftest.py) are left to the full run (they are
marked slow); this one starts in seconds and still goes through every layer: CLI, host, app, engine.
"""

from __future__ import annotations

from benchmarks.common.process import start_server, write_models


def test_a_real_server_answers_each_task_and_serves_its_pages(tiny_models, tmp_path):
    models = [{"name": m.spec.name, "source": m.spec.entry.source, "task": m.task, "recipe": {"method": "fp32"},
               "artifact": m.spec.artifact, "serve": {"threads": 1}}
              for m in (tiny_models["fill-mask"], tiny_models["classification"])]
    proc = start_server(write_models(tmp_path / "models.yaml", models), tmp_path / "serve.log",
                        extra=("--drain-grace", "0"))  # no load balancer to wait for
    try:
        client = proc.client()
        status, listed = client.get("/v1/models")
        assert status == 200 and {c["id"]: c["task"] for c in listed["data"]} == {
            "tiny-fill-mask": "fill-mask", "tiny-classification": "classification"}
        status, filled = client.post("/v1/fill-mask", {"model": "tiny-fill-mask", "inputs": "the [MASK] of",
                                                       "top_k": 3})
        assert status == 200 and len(filled["results"][0]["masks"][0]["tokens"]) == 3, filled
        status, classified = client.post("/v1/classify", {"model": "tiny-classification", "inputs": "the bank"})
        assert status == 200 and sorted(classified["results"][0]["labels"]) == ["LABEL_0", "LABEL_1", "LABEL_2"]
        for page in ("/", "/docs", "/docs/assets/swagger-ui-bundle.js"):
            assert client.get(page)[0] == 200, page
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.log_tail()
