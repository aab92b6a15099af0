"""The runtime comparison's part of the benchmark report: a table per model and ``runtimes.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.run.results import TASK_LABELS, ordered_tasks, seq_per_s
from benchmarks.run.runtimes import REFERENCE


def _agreement_cell(acc: dict[str, Any] | None) -> str:
    if not acc:
        return "-"
    if acc.get("error"):
        return "failed"
    parts = [f"{100 * acc['score']:.2f}"]
    if acc.get("cosine_to_fp32") is not None:
        parts.append(f"cos {acc['cosine_to_fp32']:.4f}")
    if acc.get("agreement") is not None:
        parts.append(f"agree {100 * acc['agreement']:.1f}")
    return f"{parts[0]} ({'; '.join(parts[1:])})" if len(parts) > 1 else parts[0]


def _grid(rows: list[dict[str, Any]]) -> tuple[str | None, list[int]]:
    """The bucket the table shows (medium when measured) and its batch sizes."""
    cells = [(x["bucket"], x["batch_size"]) for r in rows for x in r.get("throughput", [])]
    if not cells:
        return None, []
    bucket = "medium" if any(b == "medium" for b, _ in cells) else cells[0][0]
    return bucket, sorted({bs for b, bs in cells if b == bucket})


def _table(rows: list[dict[str, Any]], model: str) -> list[str]:
    bucket, sizes = _grid(rows)
    ref = next((r for r in rows if r["runtime"] == REFERENCE and r.get("throughput")), None)
    tasks = ordered_tasks(t for r in rows for t in r.get("accuracy", {}))
    cols = ["runtime", *[f"seq/s bs {bs}" for bs in sizes], *([f"x {REFERENCE} (bs {sizes[-1]})"] if ref else []),
            "p50 ms (bs 1)", "peak RSS MB", *[f"{TASK_LABELS.get(t, t)} vs torch-fp32" for t in tasks]]
    lines = [f"### Runtimes: {model} ({bucket or 'speed not measured'} inputs; the same texts and threads)", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    skipped = []
    for r in rows:
        if r.get("skipped") and not r.get("throughput"):
            skipped.append(f"- {r['runtime']} skipped: {r['skipped']}")
            continue
        speed = [f"{seq_per_s(r, bucket, bs) or 0:.1f}" for bs in sizes] if bucket else []
        if ref and bucket:
            mine, theirs = seq_per_s(r, bucket, sizes[-1]), seq_per_s(ref, bucket, sizes[-1])
            speed.append(f"{mine / theirs:.2f}x" if mine and theirs else "-")
        lat = r.get("latency_ms")
        cells = [r["runtime"], *speed, f"{lat['p50']:.1f}" if lat else "-",
                 f"{r['peak_rss_bytes'] / 1e6:.0f}" if r.get("peak_rss_bytes") else "-",
                 *[_agreement_cell(r.get("accuracy", {}).get(t)) for t in tasks]]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", *skipped, *([""] if skipped else [])]


def markdown_lines(report: dict[str, Any]) -> list[str]:
    """The runtime tables (none when the run compared no runtimes)."""
    rows = report.get("runtimes") or []
    lines: list[str] = []
    for model in dict.fromkeys(r["model"] for r in rows):
        lines += _table([r for r in rows if r["model"] == model], model)
    return lines


def plot(report: dict[str, Any], path: Path) -> bool:
    """Throughput per runtime and batch size, one panel per model; False without matplotlib or rows."""
    rows = [r for r in report.get("runtimes") or [] if r.get("throughput")]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = list(dict.fromkeys(r["model"] for r in rows))
    if not models:
        return False
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        mine = [r for r in rows if r["model"] == model]
        bucket, sizes = _grid(mine)
        width = 0.8 / len(mine)
        for i, r in enumerate(mine):
            xs = [j + i * width for j in range(len(sizes))]
            bars = ax.bar(xs, [seq_per_s(r, bucket or "", bs) or 0 for bs in sizes], width, label=r["runtime"])
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))], [f"batch {bs}" for bs in sizes])
        ax.set_ylabel("sequences / s")
        ax.set_title(f"{model}: runtimes side by side ({bucket} inputs)")
        ax.legend(fontsize=8)
        ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
