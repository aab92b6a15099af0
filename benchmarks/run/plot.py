"""The benchmark picture: per model, throughput per variant, accuracy change against throughput, and
latency against batch size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common.variants import BASELINE
from benchmarks.run.criteria import budget
from benchmarks.run.results import TASK_LABELS, ordered_tasks, ratio_point, seq_per_s

MARKERS = "osD^vP*X"


def _throughput_bars(ax: Any, rows: list[dict[str, Any]], head: tuple[str, int], title: str) -> None:
    bucket, bs = head
    values = [seq_per_s(r, bucket, bs) or 0.0 for r in rows]
    base = next((seq_per_s(r, bucket, bs) for r in rows if r["variant"] == BASELINE), None)
    bars = ax.bar([r["variant"] for r in rows], values, color="#4c72b0")
    if base:
        ax.bar_label(bars, labels=[f"{v / base:.1f}x" for v in values], fontsize=8)
    ax.set_title(f"{title}: seq/s at batch {bs} ({bucket}), x torch-fp32 on top", pad=14)
    ax.set_ylabel("sequences / s")
    ax.margins(y=0.15)


def _accuracy_vs_throughput(ax: Any, rows: list[dict[str, Any]], head: tuple[str, int] | None) -> None:
    """Change in points vs fp32 (y) against throughput (x), one series per task; variants marked on top."""
    xs = {r["variant"]: (seq_per_s(r, *head) if head else (r.get("size_bytes") or 0) / 1e6) for r in rows}
    tasks = ordered_tasks(t for r in rows for t in r.get("accuracy", {}))
    for i, task in enumerate(tasks):
        pts = [(xs[r["variant"]], r["accuracy"][task].get("delta_points") or 0.0) for r in rows
               if task in r.get("accuracy", {}) and r["accuracy"][task].get("score") is not None
               and xs[r["variant"]] is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=MARKERS[i % len(MARKERS)], s=45,
                   label=TASK_LABELS.get(task, task), alpha=0.85, zorder=3)
    ax.set_ylim(min(-1.0, ax.get_ylim()[0]), max(0.6, ax.get_ylim()[1]))
    limit = -budget("int8").max_drop_points
    ax.axhspan(ax.get_ylim()[0], limit, color="#c44e52", alpha=0.08, label="below the int8 budget")
    ax.axhline(0, color="grey", lw=0.8)
    for variant, x in xs.items():
        if x is not None:
            ax.axvline(x, color="grey", ls=":", lw=0.7)
            ax.text(x, 0.98, f" {variant}", transform=ax.get_xaxis_transform(), rotation=90, ha="right", va="top",
                    fontsize=7, color="#555555")
    ax.set_xlabel(f"sequences / s (batch {head[1]}, {head[0]})" if head else "size MB (speed not measured)")
    ax.set_ylabel("accuracy change vs torch-fp32 (points)")
    ax.set_title("accuracy against throughput")
    ax.legend(fontsize=7, loc="lower right")


def _latency_vs_batch(ax: Any, rows: list[dict[str, Any]], bucket: str) -> None:
    """Time for one batch (ms): batch 1 is the measured p50, larger batches batch / throughput."""
    for r in rows:
        pts = {x["batch_size"]: 1000.0 * x["batch_size"] / x["seq_per_s"]
               for x in r.get("throughput", []) if x["bucket"] == bucket}
        if r.get("latency_ms") and 1 not in pts:
            pts[1] = r["latency_ms"]["p50"]
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", label=r["variant"])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per batch (batch 1: p50)")
    ax.set_title(f"latency vs batch size ({bucket})")
    ax.legend(fontsize=8)


def plot(report: dict[str, Any], path: Path) -> bool:
    """Write the PNG; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = list(dict.fromkeys(r["model"] for r in report["results"]))
    fig, axes = plt.subplots(len(models), 3, figsize=(16, 4.2 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        rows = [r for r in report["results"] if r["model"] == model]
        head = ratio_point(rows)
        if head:
            _throughput_bars(axes[i][0], rows, head, model)
            _latency_vs_batch(axes[i][2], rows, head[0])
        else:
            for ax in (axes[i][0], axes[i][2]):
                ax.text(0.5, 0.5, f"{model}: speed not measured", ha="center", va="center")
                ax.set_axis_off()
        _accuracy_vs_throughput(axes[i][1], rows, head)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
