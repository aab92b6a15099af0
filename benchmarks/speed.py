"""In-process throughput and latency of one variant, measured in a fresh process.

Each variant runs in its own spawned process so that its peak RSS is its own and thread settings do
not leak between variants. The thread count is the same for PyTorch and ONNX Runtime.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workloads import BUCKETS, texts_for
from compress.timing import throughput


@dataclass(frozen=True)
class SpeedJob:
    model: str
    variant: str
    artifact: str | None  # None: the PyTorch baseline
    threads: int
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    buckets: tuple[str, ...] = BUCKETS
    repeats: int = 5
    latency_runs: int = 30
    catalog: str = "models.yaml"
    cache: str = "artifacts/bench"  # where the benchmark's own models (minilm-topic) are kept


def _setup(job: SpeedJob) -> tuple[Any, Any, str, int]:
    """(runner, tokenizer, task, max_length) inside the worker."""
    import torch

    torch.set_num_threads(job.threads)
    if job.artifact is None:
        from benchmarks.variants import load_bench_model, torch_baseline

        loaded = load_bench_model(job.model, Path(job.cache), job.catalog, job.threads)
        max_len = int(min(loaded.tokenizer.model_max_length, 512))
        return torch_baseline(loaded, job.threads), loaded.tokenizer, loaded.task, max_len
    from compress.artifact import load_artifact

    art = load_artifact(job.artifact)
    return art.runner(threads=job.threads), art.tokenizer(), art.manifest.task, art.manifest.tokenizer.max_length


def _batch(tok: Any, task: str, texts: list[str], max_len: int) -> dict[str, np.ndarray]:
    from compress.data import encode, mask_tokens

    enc = encode(tok, texts, min(max_len, 256))
    if task == "fill-mask":
        enc, _ = mask_tokens(enc, tok, rate=0.15, seed=0)
    return enc


def run_speed_job(job: SpeedJob) -> dict[str, Any]:
    """Measure one variant (call in a fresh process: see :func:`measure`)."""
    from compress.data import is_residue_vocab

    runner, tok, task, max_len = _setup(job)
    residues = is_residue_vocab(tok)
    rows = []
    for bucket in job.buckets:
        for bs in job.batch_sizes:
            enc = _batch(tok, task, texts_for(residues, bucket, bs, seed=bs), max_len)  # type: ignore[arg-type]
            sps = throughput(runner, enc, repeats=job.repeats, warmup=2)
            tokens = float(enc["attention_mask"].sum()) / bs
            rows.append({"bucket": bucket, "batch_size": bs, "seq_per_s": sps, "tokens_per_s": sps * tokens,
                         "mean_tokens": tokens})
    texts = texts_for(residues, "medium", job.latency_runs, seed=7)
    singles = [_batch(tok, task, [t], max_len) for t in texts]
    for enc in singles[:3]:
        runner(enc)
    lat = []
    for enc in singles:
        t0 = time.perf_counter()
        runner(enc)
        lat.append((time.perf_counter() - t0) * 1000)
    q = np.percentile(lat, [50, 95, 99])
    return {"model": job.model, "variant": job.variant, "threads": job.threads, "throughput": rows,
            "latency_ms": {"p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2]),
                           "mean": statistics.fmean(lat)},
            "peak_rss_bytes": _peak_rss()}


def _peak_rss() -> int:
    """This process's peak resident set (VmHWM): unlike ru_maxrss it does not inherit the parent's."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(job: SpeedJob) -> dict[str, Any]:
    """Run :func:`run_speed_job` in a fresh spawned process and return its figures."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(run_speed_job, (job,))


def size_on_disk(artifact: str | None, source_bytes: int) -> int:
    if artifact is None:
        return source_bytes
    from compress.artifact import read_manifest

    return int(read_manifest(Path(artifact)).sizes["model_bytes"])
