"""`python -m benchmarks http` end to end: a real `serve` on a tiny fill-mask artifact, under load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.common.process import descendants, write_models
from benchmarks.http.measure import LEVEL_KEYS, HttpOptions, run_http
from compress import CompressError
from tests.conftest import build_tiny


def serve_processes() -> list[int]:
    """Our descendants that run `serve` (other helpers a library may leave running do not count)."""
    def cmdline(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""
    return [p for p in descendants(os.getpid()) if b"serve" in cmdline(p)]


@pytest.fixture
def tiny_catalog(tmp_path):
    """A models.yaml with one tiny random BERT fill-mask model whose artifact does not exist yet."""
    build_tiny(tmp_path / "tiny-src", "bert", "fill-mask")
    return write_models(tmp_path / "models.yaml", [
        {"name": "tiny", "source": str(tmp_path / "tiny-src"), "task": "fill-mask", "recipe": {"method": "fp32"},
         "artifact": "artifacts/tiny-fp32", "serve": {"max_batch_size": 8, "truncate": True}},
    ])


@pytest.mark.slow  # compresses a model and runs a real server under load
def test_http_benchmark_end_to_end(tiny_catalog, tmp_path, capsys):
    out = tmp_path / "reports"
    before = set(serve_processes())  # other tests' servers (a session's shared one) are not the benchmark's
    rc = main(["http", "--model", "tiny", "--catalog", str(tiny_catalog), "--concurrency", "2,8", "--requests", "40",
               "--texts", "30", "--threads", "1", "--in-process-seconds", "0.3", "--timeout", "300", "--drain",
               "--ignore-retry-after", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert not set(serve_processes()) - before, "the server outlived the benchmark"
    artifact = tmp_path / "artifacts" / "tiny-fp32"
    assert (artifact / "manifest.json").is_file(), "the missing artifact was made with the recipe"

    report = json.loads((out / "http.json").read_text())
    assert report["schema_version"] == 2 and report["threads"] == 1 and not report["timed_out"]
    assert report["ignore_retry_after"] is True
    [m] = report["models"]
    assert (m["endpoint"], m["task"], m["method"]) == ("/v1/fill-mask", "fill-mask", "fp32")
    assert m["artifact"] == str(artifact.resolve()) and m["texts"]["count"] == 30
    ip = m["in_process"]
    assert set(ip["by_batch"]) == {"1", "8", "32", "1 plain", "8 plain", "32 plain"}
    best = max(ip["by_batch"], key=ip["by_batch"].get)
    assert ip["per_s"] == ip["by_batch"][best] > 0 and ip["plain"] == best.endswith(" plain")
    assert ip["plain_per_s"] == max(v for k, v in ip["by_batch"].items() if k.endswith(" plain"))
    assert [lv["clients"] for lv in m["levels"]] == [2, 8] and m["levels"][0]["requests"] == 40
    for lv in m["levels"]:
        assert set(LEVEL_KEYS) <= set(lv) and lv["requests"] >= 1 and lv["server_errors"] == 0
        assert set(lv["statuses"]) <= {"200", "429"} and lv["throughput"] > 0
        assert lv["vs_in_process"] == pytest.approx(lv["throughput"] / ip["per_s"])
        assert lv["vs_plain"] == pytest.approx(lv["throughput"] / ip["plain_per_s"])
        assert 1 <= lv["pass_size"] <= lv["formed_batch"] <= 8 and lv["server_cpu_ms_per_request"] > 0
        assert lv["rss_after_bytes"] > 50e6
    d = m["drain"]
    assert d["cut"] == 0 and d["other"] == 0 and d["exit_code"] == 0 and d["answered"] > 0
    assert d["ready_503_s"] is not None

    md = (out / "http.md").read_text()
    assert md in capsys.readouterr().out and (out / "http.png").stat().st_size > 10_000
    assert "| clients | answered/s |" in md and "drain: /ready 503 after" in md
    assert "ask again at once after a 429" in md


def test_unknown_model_names_the_known_ones(tiny_catalog, tmp_path, capsys):
    before = set(serve_processes())
    rc = main(["http", "--model", "nope", "--catalog", str(tiny_catalog), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown model name 'nope'" in err and "lists: tiny" in err
    assert not (tmp_path / "out").exists() and not set(serve_processes()) - before
    with pytest.raises(CompressError, match="lists: tiny"):
        run_http(HttpOptions(["nope"], catalog=str(tiny_catalog)))


def test_options_are_checked():
    with pytest.raises(ValueError, match="--concurrency must be at least 1"):
        HttpOptions(["tiny"], concurrency=[0])
    with pytest.raises(ValueError, match="--timeout must be positive"):
        HttpOptions(["tiny"], timeout=0)
    with pytest.raises(ValueError, match="exactly one"):
        HttpOptions(["a", "b"], artifact=Path("x"))


def test_held_429s_are_shown_not_judged_when_the_clients_ignore_retry_after():
    from benchmarks.http.report import checks

    def level(clients: int, throughput: float, ok_p99: float, refused_p99: float) -> dict:
        return {"clients": clients, "throughput": throughput, "vs_in_process": throughput / 250,
                "vs_plain": throughput / 200, "ok_p99_ms": ok_p99,
                "rss_before_bytes": 600e6, "rss_after_bytes": 603e6, "probe_rejected": 5,
                "probe_rejected_p99_ms": refused_p99, "rejected_p99_ms": refused_p99, "server_errors": 0}

    model = {"levels": [level(16, 240.0, 100.0, 0.0), level(256, 235.0, 160.0, 2000.0)]}
    [_, patient] = checks(model)
    [_, impatient] = checks(model, patient=False)
    assert patient.endswith("✗") and "held" not in patient
    assert impatient.endswith("✔") and "429 p99 2000 ms (held: the clients ignore Retry-After)" in impatient
    model["levels"][1]["throughput"] = 200.0  # goodput 0.83x is judged either way
    assert checks(model, patient=False)[1].endswith("✗")


def test_the_16_client_line_is_judged_against_a_plain_session_and_shows_the_best_run_of_all():
    from benchmarks.http.report import checks

    base = {"clients": 16, "throughput": 180.0, "vs_in_process": 0.86, "vs_plain": 0.95}
    [line] = checks({"levels": [base]})
    assert "plain session at its best batch: 0.95 (target ≥ 0.9) ✔" in line and line.endswith("streams at once): 0.86")
    [line] = checks({"levels": [{**base, "vs_plain": 0.89}]})
    assert "0.89 (target ≥ 0.9) ✗" in line


@pytest.mark.slow  # compresses the tiny model
def test_a_head_of_a_model_is_measured_with_its_own_task(tiny_catalog):
    from benchmarks.common.texts import serving_texts
    from benchmarks.http.measure import model_target, resolve_artifact
    from compress.artifact import read_manifest
    from compress.catalog import load_catalog
    from tests.conftest import ROOT

    catalog = load_catalog(ROOT / "models.yaml")
    entry, task = model_target(catalog, "antiberty:species")
    assert entry.name == "antiberty" and task == "classification"
    assert model_target(catalog, "antiberty:mlm")[1] == "fill-mask" and model_target(catalog, "minilm")[1] is None
    with pytest.raises(CompressError, match="its heads: mlm, species, chain"):
        model_target(catalog, "antiberty:nope")
    with pytest.raises(CompressError, match=r"models\.yaml lists"):
        model_target(catalog, "nope:species")

    artifact = resolve_artifact(load_catalog(tiny_catalog).get("tiny"), tiny_catalog)  # fill-mask
    mask = read_manifest(artifact).tokenizer.mask_token
    masked, _ = serving_texts(artifact, 20)
    plain, stats = serving_texts(artifact, 20, "classification")
    assert mask and all(t.count(mask) == 1 for t in masked) and not any(mask in t for t in plain)
    assert stats["count"] == 20


@pytest.mark.slow  # exports two heads and runs a real server under load
def test_the_served_tasks_are_measured_on_their_own_routes_with_pairs_for_rerank(tmp_path, capsys):
    """A tagger and a reranker (one random head each of a tiny model) over /v1/token-classify and /v1/rerank,
    beside their in-process figures on the same inputs (for rerank: (headline, paragraph) pairs)."""
    from benchmarks.common.texts import serving_texts
    from tests.serve.apis.conftest import head_artifacts

    arts = head_artifacts(tmp_path)
    catalog = write_models(tmp_path / "models.yaml", [
        {"name": name, "source": str(tmp_path / "heads" / "model"), "artifact": str(arts[head]),
         "serve": {"max_batch_size": 8, "truncate": True}} for name, head in (("tagger", "tags"), ("reranker", "rr"))])
    pairs, stats = serving_texts(arts["rr"], 12)
    assert all(isinstance(p, tuple) and len(p) == 2 and all(p) for p in pairs) and stats["count"] == 12
    out = tmp_path / "reports"
    rc = main(["http", "--model", "tagger,reranker", "--catalog", str(catalog), "--concurrency", "4",
               "--requests", "30", "--texts", "20", "--threads", "1", "--in-process-seconds", "0.3",
               "--timeout", "300", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "http.json").read_text())
    tagger, reranker = report["models"]
    assert (tagger["task"], tagger["endpoint"]) == ("token-classification", "/v1/token-classify")
    assert (reranker["task"], reranker["endpoint"]) == ("rerank", "/v1/rerank")
    for m in (tagger, reranker):
        [lv] = m["levels"]
        assert lv["statuses"] == {"200": 30} and m["in_process"]["per_s"] > 0
    assert "(headline, paragraph) pairs" in (out / "http.md").read_text()


@pytest.mark.slow  # exports a tiny model with a sparse head and runs a real server under load
def test_a_sparse_head_is_measured_at_embed_sparse_beside_its_in_process_terms(tmp_path, capsys):
    """A tiny BERT with mlm and splade heads, its splade head asked (MODEL:HEAD) at /v1/embed-sparse, beside the
    artifact in-process with the server's pick of each vector's terms."""
    from benchmarks.common.load import in_process_throughput
    from tests.serve.apis.conftest import head_artifacts, tiny_sparse_artifact

    art = tiny_sparse_artifact(tmp_path)
    texts = ["the market said profit rose", "a short text"]
    assert in_process_throughput(str(art), texts, batch_size=2, threads=1, seconds=0.1, task="sparse-embedding") > 0
    tagger = head_artifacts(tmp_path)["tags"]
    with pytest.raises(ValueError, match="has no sparse-embedding head; compress it with --heads mlm,splade"):
        in_process_throughput(str(tagger), texts, threads=1, seconds=0.1, task="sparse-embedding")

    catalog = write_models(tmp_path / "models.yaml", [
        {"name": "sparse", "source": str(tmp_path / "src-sparse"), "artifact": str(art),
         "heads": [{"name": "mlm"}, {"name": "splade"}], "serve": {"max_batch_size": 8, "truncate": True}}])
    out = tmp_path / "reports"
    rc = main(["http", "--model", "sparse:splade", "--catalog", str(catalog), "--concurrency", "4",
               "--requests", "30", "--texts", "20", "--threads", "1", "--in-process-seconds", "0.3",
               "--timeout", "300", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    [m] = json.loads((out / "http.json").read_text())["models"]
    assert (m["model"], m["task"], m["endpoint"]) == ("sparse:splade", "sparse-embedding", "/v1/embed-sparse")
    [lv] = m["levels"]
    assert lv["statuses"] == {"200": 30} and m["in_process"]["per_s"] > 0 and lv["vs_in_process"] > 0
    assert "each vector's terms picked as the server does" in (out / "http.md").read_text()
