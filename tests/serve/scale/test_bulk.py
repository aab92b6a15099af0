"""Bulk embedding on a local Ray: vectors equal the engine's, resume redoes no finished shard, bad input."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from serve.bulk import BulkJob, open_corpus, run_bulk
from serve.bulk.__main__ import main as bulk_main
from serve.bulk.corpus import plan_shards, read_shard
from tests.conftest import SENTENCES


def _engine_vectors(entry, texts: list[str]) -> np.ndarray:
    """What the engine (the HTTP endpoint's path) answers for ``texts``."""
    from serve.engine import Engine
    from serve.models import prepare_model

    async def go() -> np.ndarray:
        engine = Engine([prepare_model(entry, entry.default_artifact())])
        await engine.start()
        try:
            answer = await engine.infer("embedding", None, texts, {"normalize": None})
        finally:
            await engine.stop()
        return np.stack(answer.results)

    return asyncio.run(go())


def _read_out(out) -> tuple[list[str], np.ndarray, set[str]]:
    table = pq.read_table(sorted(out.glob("part-*.parquet")))
    return (table.column("id").to_pylist(), np.array(table.column("vector").to_pylist(), dtype=np.float32),
            set(table.column("model_version").to_pylist()))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    texts = [SENTENCES[i % len(SENTENCES)] + " " + "market" * (i % 5) for i in range(45)]
    path.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path, texts


def test_shards_cover_the_corpus_once(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one\n\ntwo\nthree\n\n\nfour\nfive\n")
    corpus = open_corpus(path)
    shards = plan_shards(corpus, 2)
    got = [read_shard(corpus, s) for s in shards]
    assert [s.count for s in shards] == [2, 2, 1]
    assert [i for ids, _ in got for i in ids] == ["1", "3", "4", "7", "8"]
    assert [t for _, ts in got for t in ts] == ["one", "two", "three", "four", "five"]


@pytest.mark.slow  # a local Ray
def test_bulk_equals_engine_and_resumes(local_ray, tiny_embedder, corpus, tmp_path):
    entry, _ = tiny_embedder
    path, texts = corpus
    out = tmp_path / "out"
    job = BulkJob(open_corpus(path), entry, out, shard_size=10, max_shards=2)
    first = run_bulk(job)
    assert (first.shards, first.embedded, first.done_before) == (5, 2, 0)
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert sorted(done) == ["part-00000.parquet", "part-00001.parquet"]

    job.max_shards = None
    second = run_bulk(job)
    assert (second.embedded, second.done_before, second.records) == (3, 2, 25)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet") if p.name in done} == done

    ids, vectors, versions = _read_out(out)
    assert ids == [f"doc{i}" for i in range(len(texts))]
    assert versions == {first.version}
    ref = _engine_vectors(entry, texts)
    cos = (vectors * ref).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999
    assert not list(out.glob(".*partial*"))


@pytest.mark.slow  # a local Ray
def test_bulk_cli_refuses_another_jobs_output(local_ray, tiny_embedder, corpus, tmp_path, capsys):
    _, art = tiny_embedder
    path, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("x")
    assert bulk_main([str(path), "--model", str(art), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "precious.txt").exists()
    assert bulk_main([str(path), "--model", str(art), "--out", str(out), "--force", "--shard-size", "20"]) == 0
    assert len(list(out.glob("part-*.parquet"))) == 3
    assert bulk_main([str(path), "--model", str(art), "--out", str(out), "--shard-size", "10"]) == 2
    assert "shard_size" in capsys.readouterr().err
    assert bulk_main([str(tmp_path / "nope.jsonl"), "--model", str(art), "--out", str(tmp_path / "o2")]) == 2
    assert "does not exist" in capsys.readouterr().err
