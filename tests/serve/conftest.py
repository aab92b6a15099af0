"""Serving fixtures.

- ``tiny_models``: tiny random BERTs (fill-mask, classifier, a bitsandbytes torch artifact) made ready
  the way `serve` makes them, for in-process tests of backends and the engine.
- ``server``: a real `serve` process on 127.0.0.1: AntiBERTy fill-mask, AntiBERTy species classifier,
  MiniLM embedder; API key on; small limits so each bad-input case is cheap to provoke (``$SERVE_PYTHON``:
  run by that interpreter, e.g. a serving-only install's).
- ``open_server``: MiniLM plus a tiny random BERT that has no artifact yet (compressed on first
  start); no API key.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.common.load import HttpClient, LoadReport, run_load
from benchmarks.common.process import start_server, write_models
from benchmarks.http.phases import replace_artifact

API_KEY = "test-key-123"
LIMITS = {"max_body_bytes": 64 * 1024, "minilm_max_items": 8, "minilm_max_length": 32, "max_items": 16}
ROOT = Path(__file__).resolve().parents[2]
# SERVE_PYTHON=VENV/bin/python: ``server`` runs that interpreter's `serve`, e.g. a serving-only install's, which
# must pass the same accuracy and bad-input checks as the full install (tests/serve/test_lean_install.py).
SERVE_PYTHON = os.environ.get("SERVE_PYTHON") or None


def packaged_entry(name: str, artifact: Path, **serve_opts: object) -> dict:
    from compress.catalog import entry_or_head, load_catalog

    # antiberty-species: that head of antiberty, alone; heads dropped, the artifact has one task
    entry = entry_or_head(load_catalog(ROOT / "models.yaml"), name).model_dump(
        exclude_none=True, exclude={"serve", "artifact", "heads"})
    return {**entry, "artifact": str(artifact), "serve": serve_opts}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A tiny fill-mask BERT and a tiny classifier, compressed (fp32) the way `serve` does on first start."""
    from compress.catalog import ModelEntry
    from compress.pipeline import compress_model
    from compress.recipe import Recipe
    from compress.sources import load_model
    from serve.models import prepare_model
    from tests.conftest import build_tiny

    tmp = tmp_path_factory.mktemp("tiny")
    out = {}
    for task in ("fill-mask", "classification"):
        build_tiny(tmp / task, "bert", task)
        entry = ModelEntry(name=f"tiny-{task}", source=str(tmp / task), task=task, recipe={"method": "fp32"},
                           artifact=str(tmp / f"art-{task}"), serve={"max_batch_size": 3, "threads": 1})
        out[task] = prepare_model(entry, tmp)
    # A bitsandbytes recipe makes a `backend: torch` artifact; serve follows the manifest.
    compress_model(load_model(str(tmp / "fill-mask")), tmp / "art-bnb", name="tiny-bnb",
                   bench=False,
                   recipe=Recipe.model_validate({"method": "bnb-int8", "validation": {"gate": False, "n": 32}}))
    entry = ModelEntry(name="tiny-bnb", source=str(tmp / "fill-mask"), task="fill-mask",
                       artifact=str(tmp / "art-bnb"), serve={"threads": 1})
    out["bnb"] = prepare_model(entry, tmp)
    return out


@pytest.fixture(scope="session")
def server(packaged_artifact, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-main")
    config = write_models(tmp / "models.yaml", [
        packaged_entry("antiberty", packaged_artifact("antiberty"), max_items=LIMITS["max_items"]),
        packaged_entry("antiberty-species", packaged_artifact("antiberty-species"), max_items=LIMITS["max_items"]),
        packaged_entry("minilm", packaged_artifact("minilm"), max_items=LIMITS["minilm_max_items"],
                       max_length=LIMITS["minilm_max_length"], truncate=True),
    ])
    proc = start_server(config, tmp / "serve.log", api_key=API_KEY, python=SERVE_PYTHON,
                        extra=("--max-body-size", str(LIMITS["max_body_bytes"])))
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def open_server(packaged_artifact, tmp_path_factory):
    from tests.conftest import build_tiny

    tmp = tmp_path_factory.mktemp("serve-open")
    build_tiny(tmp / "tiny-src", "bert", "fill-mask")
    config = write_models(tmp / "models.yaml", [
        packaged_entry("minilm", packaged_artifact("minilm")),
        {"name": "tiny", "source": str(tmp / "tiny-src"), "task": "fill-mask", "recipe": {"method": "fp32"},
         "artifact": "artifacts/tiny-fp32", "serve": {"max_batch_size": 4, "threads": 1}},
    ])
    proc = start_server(config, tmp / "serve.log")
    yield proc
    proc.stop()


def swap_under_load(url: str, client: HttpClient, artifact: Path, body: Callable[[int], Any], *, concurrency: int,
                    seconds: float, wait: float, api_key: str | None) -> tuple[str, str, LoadReport]:
    """Replace ``artifact`` while clients post embeddings; (version before, version seen after, the load's report)."""
    first = client.request("POST", "/v1/embeddings", body(0))[1]["x-model-version"]
    results: list = []
    load = threading.Thread(target=lambda: results.append(run_load(
        url, "/v1/embeddings", body, concurrency=concurrency, requests=100_000, max_seconds=seconds,
        api_key=api_key)))
    load.start()
    time.sleep(2)
    replace_artifact(artifact, "retrained")
    deadline, seen = time.monotonic() + wait, first
    while time.monotonic() < deadline and seen == first:
        time.sleep(0.3)
        seen = client.request("POST", "/v1/embeddings", body(1))[1]["x-model-version"]
    load.join()
    return first, seen, results[0]
