"""`python -m benchmarks http` end to end: a real `serve` on a tiny fill-mask artifact, under load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.http import MEDIAN_KEYS, HttpOptions, run_http
from compress import CompressError
from serve.process import descendants, write_models
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


def test_http_benchmark_end_to_end(tiny_catalog, tmp_path, capsys):
    out = tmp_path / "reports"
    rc = main(["http", "--model", "tiny", "--catalog", str(tiny_catalog), "--concurrency", "4", "--requests", "60",
               "--threads", "1", "--in-process-seconds", "1", "--timeout", "120", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert not serve_processes(), "the server outlived the benchmark"
    artifact = tmp_path / "artifacts" / "tiny-fp32"
    assert (artifact / "manifest.json").is_file(), "the missing artifact was made with the recipe"

    report = json.loads((out / "http.json").read_text())
    assert report["endpoint"] == "/v1/fill-mask" and report["task"] == "fill-mask"
    assert report["artifact"] == str(artifact.resolve()) and report["method"] == "fp32"
    assert (report["threads"], report["max_batch_size"], report["timed_out"]) == (1, 8, False)
    [r] = report["rounds"]
    assert r["requests"] == 60 and r["errors"] == 0 and r["statuses"] == {"200": 60}
    assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
    assert r["throughput"] > 0 and r["in_process_per_s"] > 0
    assert r["http_vs_in_process"] == pytest.approx(r["throughput"] / r["in_process_per_s"])
    assert 1 <= r["mean_batch_size"] <= 8
    assert r["server_peak_rss_bytes"] >= r["server_rss_bytes"] > 50e6  # a few Python processes
    assert r["server_processes"] >= 1  # the server (and the helpers a host may start)
    assert set(report["median"]) == set(MEDIAN_KEYS) and report["median"]["requests"] == 60

    md = (out / "http.md").read_text()
    assert md in capsys.readouterr().out
    assert "| requests/s | p50 ms |" in md and f"| 1 | {r['throughput']:.1f} |" in md


def test_unknown_model_names_the_known_ones(tiny_catalog, tmp_path, capsys):
    rc = main(["http", "--model", "nope", "--catalog", str(tiny_catalog), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown model name 'nope'" in err and "lists: tiny" in err
    assert not (tmp_path / "out").exists() and not serve_processes()
    with pytest.raises(CompressError, match="lists: tiny"):
        run_http(HttpOptions("nope", catalog=str(tiny_catalog)))


def test_options_are_checked():
    with pytest.raises(ValueError, match="--concurrency must be at least 1"):
        HttpOptions("tiny", concurrency=0)
    with pytest.raises(ValueError, match="--timeout must be positive"):
        HttpOptions("tiny", timeout=0)
