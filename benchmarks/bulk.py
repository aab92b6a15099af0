"""`python -m benchmarks bulk`: bulk embedding on Ray Data beside the same artifact in-process.

Corpus: every body paragraph of the 2,225 BBC News articles (JSON lines, id ``ARTICLE-PARAGRAPH``).
In-process: one :class:`serve.bulk.embedder.Embedder` (the same code an actor runs) over the same
shards, all cores as threads. On Ray, per ``--layouts`` entry ``ACTORSxCPUS`` on a local Ray: a job of
the whole corpus in one run (its throughput is the figure, actor start and model load included), then
a job interrupted after half its shards and resumed (the resume must redo no finished shard; its
throughput over both runs pays for a second actor start and model load).
Outputs ``bulk.json``, ``bulk.md`` and ``bulk.png`` under ``--out``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common.embedder import embedder_entry

SHARD_SIZE = 512


def bbc_paragraphs() -> list[tuple[str, str]]:
    """(id, text) of every non-empty body paragraph of the BBC News articles."""
    from compress.data import bbc_articles

    return [(f"{a}-{k}", p.strip()) for a, (_, text) in enumerate(bbc_articles())
            for k, p in enumerate(text.split("\n")[1:]) if p.strip()]


def in_process(artifact: Path, texts: list[str], threads: int) -> float:
    """Texts per second of one Embedder over the corpus, shard by shard (model load excluded)."""
    from serve.bulk.embedder import Embedder

    embedder = Embedder.load(embedder_entry(artifact, threads))
    t0 = time.perf_counter()
    for start in range(0, len(texts), SHARD_SIZE):
        embedder.embed(texts[start: start + SHARD_SIZE])
    return len(texts) / (time.perf_counter() - t0)


def on_ray(artifact: Path, corpus: Path, out: Path, actors: int, cpus: int) -> dict[str, Any]:
    """One job in one run; then one interrupted after half its shards and resumed."""
    from serve.bulk import BulkJob, open_corpus, run_bulk

    whole = run_bulk(BulkJob(open_corpus(corpus), embedder_entry(artifact, cpus), out.with_name(f"{out.name}-whole"),
                             shard_size=SHARD_SIZE, actors=actors, cpus_per_actor=cpus))
    job = BulkJob(open_corpus(corpus), embedder_entry(artifact, cpus), out, shard_size=SHARD_SIZE, actors=actors,
                  cpus_per_actor=cpus)
    job.max_shards = -(-sum(1 for _ in corpus.open()) // SHARD_SIZE) // 2
    first = run_bulk(job)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    job.max_shards = None
    second = run_bulk(job)
    redone = sum(p.stat().st_mtime_ns != t for p, t in mtimes.items())
    seconds = first.seconds + second.seconds
    return {"layout": f"{actors}x{cpus}", "actors": actors, "cpus_per_actor": cpus,
            "whole_seconds": round(whole.seconds, 1), "whole_per_s": whole.records / whole.seconds,
            "seconds": round(seconds, 1), "per_s": (first.records + second.records) / seconds,
            "first_run_shards": first.embedded,
            "resumed_shards": second.embedded, "skipped_on_resume": second.done_before, "redone": redone}


def run_bulk_bench(artifact: Path, layouts: list[tuple[int, int]], threads: int, limit: int | None) -> dict:
    """The report (module docstring)."""
    from serve.raycluster import connect, import_ray

    records = bbc_paragraphs()[:limit]
    report: dict[str, Any] = {"artifact": str(artifact), "texts": len(records), "shard_size": SHARD_SIZE,
                              "threads": threads}
    report["in_process_per_s"] = in_process(artifact, [t for _, t in records], threads)
    ray = import_ray()
    started = connect(num_cpus=threads)  # started once: Ray's own start-up is not the job's
    try:
        with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
            corpus = Path(tmp) / "bbc.jsonl"
            corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in records))
            report["ray"] = [on_ray(artifact, corpus, Path(tmp) / f"out-{a}x{c}", a, c) for a, c in layouts]
    finally:
        if started:
            ray.shutdown()
    for r in report["ray"]:
        r["whole_vs_in_process"] = r["whole_per_s"] / report["in_process_per_s"]
        r["vs_in_process"] = r["per_s"] / report["in_process_per_s"]
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Bulk embedding, {report['texts']} BBC paragraphs, shards of {report['shard_size']}, "
             f"{report['threads']} cores; in-process {report['in_process_per_s']:.1f} texts/s", "",
             "| actors x CPUs | one run: texts/s | x in-process | interrupted and resumed: texts/s | x in-process | "
             "resumed: skipped / embedded / redone |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['layout']} | {r['whole_per_s']:.1f} | {r['whole_vs_in_process']:.2f} | {r['per_s']:.1f} | "
              f"{r['vs_in_process']:.2f} | {r['skipped_on_resume']} / {r['resumed_shards']} / {r['redone']} |"
              for r in report["ray"]]
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bulk.md").write_text(markdown(report))
    names = ["in-process", *[f"Ray {r['layout']}{what}" for r in report["ray"] for what in ("", "\nresumed")]]
    values = [report["in_process_per_s"], *[v for r in report["ray"] for v in (r["whole_per_s"], r["per_s"])]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(names, values, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{v / values[0]:.2f}x" for v in values], fontsize=8)
    ax.set_ylabel("texts / s")
    ax.set_title(f"Bulk embedding, {report['texts']} BBC paragraphs (actors x CPUs)", pad=12)
    ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(out / "bulk.png", dpi=120)
    plt.close(fig)
