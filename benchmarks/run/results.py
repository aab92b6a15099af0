"""Reading a benchmark report's rows: a task's label and order, a row's throughput at one point."""

from __future__ import annotations

from typing import Any

from benchmarks.run.accuracy import TASKS

TASK_LABELS = {"masked_residue": "masked-residue top-1 %", "species": "species acc %", "chain": "chain acc %",
               "lee50": "Lee-50 Spearman x100", "bbc_probe": "BBC probe acc %", "topic": "topic acc %",
               "sparse": "SPLADE top-32 overlap with fp32 %"}


def ordered_tasks(names: Any) -> list[str]:
    """Task names in the suites' order (a JSON round trip sorts them), unknown ones last."""
    known = list(TASKS)
    return sorted(dict.fromkeys(names), key=lambda t: (known.index(t) if t in known else len(known), t))


def seq_per_s(res: dict[str, Any], bucket: str, bs: int) -> float | None:
    """One result's throughput (sequences/s) at (bucket, batch size), when measured."""
    for row in res.get("throughput", []):
        if row["bucket"] == bucket and row["batch_size"] == bs:
            return float(row["seq_per_s"])
    return None


def ratio_point(rows: list[dict[str, Any]]) -> tuple[str, int] | None:
    """The bucket and batch size the tables' and plot's ratio is taken at: medium / 32 when measured."""
    measured = [x for r in rows for x in r.get("throughput", [])]
    if not measured:
        return None
    buckets = {x["bucket"] for x in measured}
    sizes = {x["batch_size"] for x in measured}
    return ("medium" if "medium" in buckets else measured[0]["bucket"]), (32 if 32 in sizes else max(sizes))
