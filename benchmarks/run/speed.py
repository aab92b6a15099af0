"""In-process throughput and latency of a model's variants, measured side by side in alternating rounds.

Each variant runs in its own spawned process, so that its peak RSS is its own and thread settings do
not leak between variants; the thread count is the same for PyTorch and ONNX Runtime. All of a
model's variants are loaded first, then timed in turn: round 1 times every variant on every
(bucket, batch size), round 2 again in a rotated order, and so on. A variant's figure is the median
of its rounds. A shared CPU's speed drifts by 10-20 % over minutes; timed minutes apart, two variants
would see different machines, while alternating short windows lets the drift fall on all of them
alike, so the ratios between variants (the speed-ups the report judges) hold from run to run.
Only one worker runs at a time; the others wait on their pipe.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run.workloads import BUCKETS, texts_for

Runner = Callable[[dict[str, np.ndarray]], object]
QUERY_WORDS = 8  # rerank: a pair's query is its passage's first words


@dataclass(frozen=True)
class SpeedJob:
    """One variant to time."""

    model: str
    variant: str
    artifact: str | None  # None: the PyTorch baseline


@dataclass(frozen=True)
class SpeedSettings:
    """How the variants are timed (the same for all of them).

    Args:
        threads: intra-op threads of every runner.
        batch_sizes, buckets: the throughput grid.
        rounds: alternating rounds; a figure is the median over them.
        seconds: each timed window runs the batch again until this long has passed (twice at least).
        latency_runs: batch-1 requests per variant, spread over the rounds.
        setup: ``"module:function"`` that makes (runner, tokenizer, task, max_length) from
            (job, settings); the default loads the artifact or the PyTorch baseline.
    """

    threads: int
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    buckets: tuple[str, ...] = BUCKETS
    rounds: int = 5
    seconds: float = 1.0
    latency_runs: int = 30
    catalog: str = "models.yaml"
    cache: str = "artifacts/bench"  # where the benchmark's own models (minilm-topic) are kept
    setup: str = "benchmarks.run.speed:load_runner"

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.latency_runs < 1 or self.seconds <= 0 or not (self.batch_sizes and self.buckets):
            raise ValueError("speed settings need rounds >= 1, latency_runs >= 1, seconds > 0, "
                             "a batch size and a bucket")

    def grid(self) -> list[tuple[str, int]]:
        return [(b, bs) for b in self.buckets for bs in self.batch_sizes]


def load_runner(job: SpeedJob, settings: SpeedSettings) -> tuple[Runner, Any, str, int]:
    """(runner, tokenizer, task, max_length) of one variant, inside its worker."""
    import torch

    torch.set_num_threads(settings.threads)
    if job.artifact is None:
        from benchmarks.common.variants import torch_original

        original = torch_original(job.model, Path(settings.cache), settings.catalog, settings.threads)
        return original.runner, original.tokenizer, original.task, original.max_length
    from benchmarks.common import task_models
    from compress.artifact import load_artifact

    art = load_artifact(job.artifact)
    # a task model's inputs are its task's, as its torch-fp32's (antiberty-sparse's artifact is fill-mask first)
    own = task_models.is_task_model(job.model)
    task = task_models.served_task(job.model) if own else task_models.artifact_task(art.manifest)
    return art.runner(threads=settings.threads), art.tokenizer(), task, art.manifest.tokenizer.max_length


def _batch(tok: Any, task: str, texts: list[str], max_len: int) -> dict[str, np.ndarray]:
    """One batch of ``texts`` as ``task`` reads them: masked for fill-mask; for rerank each text is the passage
    of a pair whose query is its first QUERY_WORDS words (segment ids as the server sends them)."""
    from benchmarks.common.texts import encode_items
    from compress.data import encode, mask_tokens

    if task == "rerank":
        return encode_items(tok, [(" ".join(t.split()[:QUERY_WORDS]), t) for t in texts], min(max_len, 256))
    enc = encode(tok, texts, min(max_len, 256))
    if task == "fill-mask":
        enc, _ = mask_tokens(enc, tok, rate=0.15, seed=0)
    return enc


def _timed(runner: Runner, enc: dict[str, np.ndarray], seconds: float) -> float:
    """Sequences per second over one window of at least ``seconds`` and two runs."""
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        runner(enc)
        n += 1
    return n * enc["input_ids"].shape[0] / (time.perf_counter() - t0)


def _inputs(setup: tuple[Runner, Any, str, int], settings: SpeedSettings
            ) -> tuple[dict[tuple[str, int], dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The batches of the grid and the batch-1 latency requests (medium inputs)."""
    from compress.data import is_residue_vocab

    _, tok, task, max_len = setup
    residues = is_residue_vocab(tok)
    grid = {(b, bs): _batch(tok, task, texts_for(residues, b, bs, seed=bs), max_len)  # type: ignore[arg-type]
            for b, bs in settings.grid()}
    singles = [_batch(tok, task, [t], max_len) for t in texts_for(residues, "medium", settings.latency_runs, seed=7)]
    return grid, singles


def _worker(job: SpeedJob, settings: SpeedSettings, conn: Any) -> None:
    """Load one variant, then answer the parent's commands until "end" (runs in a spawned process)."""
    import importlib

    try:
        module, fn = settings.setup.split(":")
        setup = getattr(importlib.import_module(module), fn)(job, settings)
        runner = setup[0]
        grid, singles = _inputs(setup, settings)
        for enc in [*grid.values(), *singles[:3]]:  # warm-up: first runs allocate and pick kernels
            runner(enc)
        conn.send(("ready", None))
    except Exception as e:  # reported as this variant's error; the other variants go on
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    while True:
        cmd, arg = conn.recv()
        if cmd == "throughput":
            conn.send(("ok", _timed(runner, grid[arg], settings.seconds)))
        elif cmd == "latency":
            ms = []
            for enc in singles[arg[0]:arg[1]]:
                t0 = time.perf_counter()
                runner(enc)
                ms.append((time.perf_counter() - t0) * 1000)
            conn.send(("ok", ms))
        else:
            conn.send(("ok", {"peak_rss_bytes": _peak_rss(), "tokens": {f"{b}/{bs}": float(e["attention_mask"].sum())
                                                                         / bs for (b, bs), e in grid.items()}}))
            return


def schedule(n_jobs: int, rounds: int) -> list[list[int]]:
    """The order of the jobs in each round: rotated by one each round, so none is always first."""
    return [[(r + i) % n_jobs for i in range(n_jobs)] for r in range(rounds)]


def measure_side_by_side(jobs: list[SpeedJob], settings: SpeedSettings,
                         progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Time ``jobs`` in alternating rounds, each in its own process; one result per job, in order.

    Returns:
        Per job: ``throughput`` [{bucket, batch_size, seq_per_s (median of the rounds), seq_per_s_rounds,
        tokens_per_s, mean_tokens}], ``latency_ms`` {p50, p95, p99, mean} at batch 1, ``peak_rss_bytes``,
        ``rounds``; or ``error`` when the variant could not be loaded or its worker died.
    """
    ctx = mp.get_context("spawn")
    workers: dict[int, tuple[Any, Any]] = {}
    results: list[dict[str, Any]] = [{"model": j.model, "variant": j.variant, "threads": settings.threads}
                                     for j in jobs]
    try:
        for i, job in enumerate(jobs):  # loaded one at a time: loading is timed by nobody, but RAM adds up
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(job, settings, child), daemon=True)
            proc.start()
            child.close()
            status, msg = _ask(parent, None)
            if status == "ready":
                workers[i] = (proc, parent)
            else:
                results[i]["error"] = msg
                proc.join(5)
        tps: dict[int, dict[tuple[str, int], list[float]]] = {i: {} for i in workers}
        lat: dict[int, list[float]] = {i: [] for i in workers}
        order = list(workers)
        per_round = -(-settings.latency_runs // settings.rounds)
        for r, turn in enumerate(schedule(len(order), settings.rounds)):
            if progress:
                progress(f"  round {r + 1}/{settings.rounds}: {', '.join(jobs[order[k]].variant for k in turn)}")
            for cell in settings.grid():
                keep = functools.partial(_append_rate, tps, cell)
                for k in turn:
                    _collect(order[k], workers, results, ("throughput", cell), keep)
            span = (r * per_round, min((r + 1) * per_round, settings.latency_runs))
            for k in turn:
                _collect(order[k], workers, results, ("latency", span), lambda i, v: lat[i].extend(v))
        for i in list(workers):
            _collect(i, workers, results, ("end", None), lambda i, v: results[i].update(_summary(
                tps[i], lat[i], v, settings)))
    finally:
        for proc, conn in workers.values():
            conn.close()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    return results


def _ask(conn: Any, command: tuple[str, Any] | None) -> tuple[str, Any]:
    """Send ``command`` (None: just wait) and return the worker's answer; a dead worker is an error."""
    try:
        if command is not None:
            conn.send(command)
        return conn.recv()
    except (EOFError, OSError, BrokenPipeError):
        return "error", "the measuring process died (out of memory?)"


def _append_rate(tps: dict[int, dict[tuple[str, int], list[float]]], cell: tuple[str, int], i: int,
                 rate: float) -> None:
    tps[i].setdefault(cell, []).append(rate)


def _collect(i: int, workers: dict[int, tuple[Any, Any]], results: list[dict[str, Any]], command: tuple[str, Any],
             keep: Callable[[int, Any], None]) -> None:
    """Run one command on worker ``i``; an error retires the worker and is recorded as its result."""
    if i not in workers:
        return
    status, value = _ask(workers[i][1], command)
    if status == "ok":
        keep(i, value)
        return
    results[i]["error"] = value
    proc, conn = workers.pop(i)
    conn.close()
    proc.kill()


def _summary(tps: dict[tuple[str, int], list[float]], lat: list[float], end: dict[str, Any],
             settings: SpeedSettings) -> dict[str, Any]:
    rows = []
    for (bucket, bs), values in tps.items():
        sps, tokens = statistics.median(values), end["tokens"][f"{bucket}/{bs}"]
        rows.append({"bucket": bucket, "batch_size": bs, "seq_per_s": sps, "tokens_per_s": sps * tokens,
                     "mean_tokens": tokens, "seq_per_s_rounds": [round(v, 2) for v in values]})
    q = np.percentile(lat, [50, 95, 99])
    return {"throughput": rows, "rounds": settings.rounds, "peak_rss_bytes": end["peak_rss_bytes"],
            "latency_ms": {"p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2]), "mean": statistics.fmean(lat)}}


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

