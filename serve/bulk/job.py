"""A bulk embedding job on Ray Data: one shard per block, an actor pool of embedders, resumable.

The corpus is cut into fixed shards (:mod:`serve.bulk.corpus`); ``OUT/bulk.json`` records the corpus,
the shard size and the model's artifact version, and each finished shard is one Parquet file
``OUT/part-NNNNN.parquet`` renamed into place when complete. A run skips the shards already there,
so an interrupted job resumes where it stopped and a finished shard is never embedded twice.

Ray Data runs ``map_batches`` over the pending shards with a pool of actors; each actor loads the
model once (one ONNX Runtime session with the actor's CPUs as threads), then reads, embeds and writes
one shard at a time, so memory is bounded by a shard per actor. The driver shows progress with ETA.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serve.bulk.corpus import Corpus, Shard, plan_shards, read_shard
from serve.bulk.embedder import Embedder, write_shard
from serve.config import ConfigError

if TYPE_CHECKING:
    from compress.catalog import ModelEntry

log = logging.getLogger("serve.bulk")
MANIFEST = "bulk.json"


def shard_file(out: Path, index: int) -> Path:
    return out / f"part-{index:05d}.parquet"


@dataclass
class BulkJob:
    """What to embed, with what, where: see :func:`run_bulk`."""

    corpus: Corpus
    entry: ModelEntry
    out: Path
    base: Path = Path(".")
    shard_size: int = 1024
    actors: int = 1
    cpus_per_actor: int | None = None  # default: the cluster's CPUs over the actors
    max_shards: int | None = None  # stop after this many shards (rerun to go on)
    force: bool = False
    ray_address: str | None = None


@dataclass
class BulkSummary:
    shards: int
    done_before: int
    embedded: int
    records: int
    seconds: float
    version: str

    @property
    def texts_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class ShardWorker:
    """A Ray Data actor: one model loaded once; each call embeds and writes whole shards."""

    def __init__(self, entry: dict[str, Any], base: str, corpus: Corpus, out: str, version: str) -> None:
        from compress.catalog import ModelEntry

        self.embedder = Embedder.load(ModelEntry.model_validate(entry), base)
        if self.embedder.version != version:
            raise ConfigError(f"the artifact changed during the job (version {self.embedder.version}, the job's is "
                              f"{version}); rerun with --force to embed everything with the new one")
        self.corpus, self.out = corpus, Path(out)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        done: dict[str, list[float]] = {"index": [], "records": [], "tokens": [], "seconds": []}
        for k in range(len(batch["index"])):
            t0 = time.perf_counter()
            shard = Shard(**{f: int(batch[f][k]) for f in ("index", "start", "count", "offset", "line")})
            ids, texts = read_shard(self.corpus, shard)
            vectors, tokens = self.embedder.embed(texts)
            write_shard(shard_file(self.out, shard.index), ids, vectors, self.embedder.version)
            for key, value in (("index", shard.index), ("records", len(ids)), ("tokens", tokens),
                               ("seconds", time.perf_counter() - t0)):
                done[key].append(value)
        return {k: np.asarray(v) for k, v in done.items()}


def _prepare_out(job: BulkJob, shards: list[Shard], version: str) -> None:
    """Create ``out`` with its manifest, or check that the one there is this job's (then resume).

    Raises:
        ConfigError: ``out`` holds another job and --force was not given.
    """
    want = {"corpus": job.corpus.signature(), "shard_size": job.shard_size, "shards": len(shards),
            "records": sum(s.count for s in shards), "model": job.entry.name, "version": version}
    path = job.out / MANIFEST
    if job.out.exists() and job.force:
        shutil.rmtree(job.out)
    elif path.is_file():
        have = json.loads(path.read_text())
        if have != want:
            diff = ", ".join(k for k in want if have.get(k) != want[k])
            raise ConfigError(f"{job.out} holds another bulk job (its {diff} differ); pass --force to start over "
                              "or choose another --out")
    elif job.out.exists() and any(job.out.iterdir()):
        raise ConfigError(f"{job.out} exists and is not a bulk embedding output; choose another --out or pass --force")
    job.out.mkdir(parents=True, exist_ok=True)
    for stale in job.out.glob(".part-*.partial-*"):  # left by a killed worker
        stale.unlink(missing_ok=True)
    if not path.is_file():
        tmp = path.with_name(f".{MANIFEST}.{os.getpid()}")
        tmp.write_text(json.dumps(want, indent=2) + "\n")
        os.replace(tmp, path)


def run_bulk(job: BulkJob) -> BulkSummary:
    """Embed ``job.corpus`` into ``job.out`` on Ray (local on 127.0.0.1 unless ``ray_address``).

    Example:
        >>> run_bulk(BulkJob(open_corpus("paragraphs.jsonl"), entry, Path("vectors")))  # doctest: +SKIP

    Raises:
        ConfigError: a bad corpus, model or output directory (the message says how to fix it).
    """
    from serve.engine import artifact_version
    from serve.models import prepare_model

    served = prepare_model(job.entry, job.base, compress_missing=False)  # fails early, before Ray starts
    if served.task != "embedding":
        raise ConfigError(f"{job.entry.name} is a {served.task} model; bulk embedding needs an embedding model")
    version = artifact_version(served.spec.artifact)
    shards = plan_shards(job.corpus, job.shard_size)
    _prepare_out(job, shards, version)
    pending = [s for s in shards if not shard_file(job.out, s.index).is_file()]
    done_before = len(shards) - len(pending)
    pending = pending[: job.max_shards] if job.max_shards is not None else pending
    t0, records = time.perf_counter(), 0
    if pending:
        log.info("%d of %d shards to embed (%d done before), version %s", len(pending), len(shards), done_before,
                 version)
        records = _embed_on_ray(job, pending, version)
    return BulkSummary(len(shards), done_before, len(pending), records, time.perf_counter() - t0, version)


def _embed_on_ray(job: BulkJob, pending: list[Shard], version: str) -> int:
    """Run the pending shards through the actor pool; progress with ETA on stderr. Returns records embedded."""
    from tqdm import tqdm

    from serve.raycluster import connect, import_ray

    ray = import_ray(local=job.ray_address is None)
    started = connect(job.ray_address)
    try:
        cpus = job.cpus_per_actor or max(1, int(ray.cluster_resources().get("CPU", 1)) // job.actors)
        entry = job.entry.model_copy(update={"serve": job.entry.serve.model_copy(update={
            "truncate": True, "threads": cpus})}).model_dump(mode="json")
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.from_items([asdict(s) for s in pending], override_num_blocks=len(pending))
        pool = ray.data.ActorPoolStrategy(size=job.actors)
        ds = ds.map_batches(ShardWorker, batch_size=1, compute=pool, num_cpus=cpus,
                            fn_constructor_kwargs={"entry": entry, "base": str(job.base), "corpus": job.corpus,
                                                   "out": str(job.out.resolve()), "version": version})
        records = 0
        with tqdm(total=sum(s.count for s in pending), unit="text", desc="embedding", smoothing=0.1) as bar:
            for row in ds.iter_rows():
                records += int(row["records"])
                bar.update(int(row["records"]))
        return records
    finally:
        if started:
            ray.shutdown()
