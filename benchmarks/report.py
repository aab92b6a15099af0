"""Benchmark reports: stable-keyed JSON, a Markdown table with ratios to the baseline, a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.variants import BASELINE


def _tp(res: dict[str, Any], bucket: str, bs: int) -> float | None:
    for row in res["throughput"]:
        if row["bucket"] == bucket and row["batch_size"] == bs:
            return float(row["seq_per_s"])
    return None


def _headline(res: dict[str, Any]) -> tuple[str, int]:
    """The bucket and batch size the headline ratio is taken at: medium / 32 when measured."""
    rows = res["throughput"]
    buckets = {r["bucket"] for r in rows}
    sizes = {r["batch_size"] for r in rows}
    return ("medium" if "medium" in buckets else rows[0]["bucket"]), (32 if 32 in sizes else max(sizes))


def markdown(report: dict[str, Any]) -> str:
    lines = [f"CPU: {report['cpu']['model']} ({report['cpu']['isa']}), {report['threads']} threads on every side.",
             ""]
    for model in dict.fromkeys(r["model"] for r in report["results"]):
        rows = [r for r in report["results"] if r["model"] == model]
        base = next((r for r in rows if r["variant"] == BASELINE), None)
        bucket, bs = _headline(rows[0])
        lines += [f"### {model} (throughput at batch {bs}, {bucket} inputs)", "",
                  "| variant | size MB | seq/s | x baseline | tokens/s | p50 ms (bs 1) | p99 ms | peak RSS MB |"
                  " agreement |", "|---|---|---|---|---|---|---|---|---|"]
        base_tp = _tp(base, bucket, bs) if base else None
        for r in rows:
            tp = _tp(r, bucket, bs) or 0.0
            tok = next(x["tokens_per_s"] for x in r["throughput"] if x["bucket"] == bucket and x["batch_size"] == bs)
            ratio = f"{tp / base_tp:.2f}x" if base_tp else "-"
            size = f"{r['size_bytes'] / 1e6:.1f}" if "size_bytes" in r else "-"
            v = r.get("validation") or {}
            agree = next((f"{k} {v[k]:.4f}" for k in ("top1_agreement", "label_agreement", "mean_cosine") if k in v),
                         "(reference)")
            lat = r["latency_ms"]
            lines.append(f"| {r['variant']} | {size} | {tp:.1f} | {ratio} | {tok:.0f} | {lat['p50']:.1f} | "
                         f"{lat['p99']:.1f} | {r['peak_rss_bytes'] / 1e6:.0f} | {agree} |")
        lines.append("")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> bool:
    """Throughput per variant (left) and throughput against batch size (right); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = list(dict.fromkeys(r["model"] for r in report["results"]))
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.6 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        rows = [r for r in report["results"] if r["model"] == model]
        bucket, bs = _headline(rows[0])
        ax = axes[i][0]
        ax.bar([r["variant"] for r in rows], [_tp(r, bucket, bs) or 0 for r in rows], color="#4c72b0")
        ax.set_title(f"{model}: seq/s at batch {bs} ({bucket})")
        ax.set_ylabel("sequences / s")
        ax = axes[i][1]
        for r in rows:
            pts = sorted((x["batch_size"], x["seq_per_s"]) for x in r["throughput"] if x["bucket"] == bucket)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=r["variant"])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("sequences / s")
        ax.set_title(f"{model}: throughput vs batch size ({bucket})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_reports(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "benchmark.md").write_text(markdown(report) + "\n")
    plot(report, out / "benchmark.png")
