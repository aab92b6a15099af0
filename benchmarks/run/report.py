"""Benchmark reports: stable-keyed JSON, a Markdown table per model with a list of misses, a PNG plot.

``benchmark.json`` (schema_version 2; keys are only ever added):

- ``schema_version``, ``cpu`` {``model``, ``isa``}, ``threads``, ``quick``, ``seconds`` (wall time)
- ``criteria``: ``speedup`` {``variant``, ``min``, ``batch_size``}, ``pruned`` {``variant``,
  ``min_speedup_over_int8``, ``min_smaller_than_fp32_onnx``}, ``budgets`` {variant: {``max_drop_points``,
  ``min_agreement``, ``min_cosine``}}, ``default_budget`` (see criteria.py)
- ``tasks``: {task: {``model``, ``metric``}} for the tasks scored (see accuracy.py)
- ``results``: one per model x variant:
  ``model``, ``variant``, ``threads``, ``artifact`` (null for torch-fp32), ``size_bytes``,
  ``fp32_onnx_bytes``, ``validation`` (compress's gate figures from the manifest), ``error`` when
  the variant's artifact could not be made;
  with speed: ``throughput`` [{``bucket``, ``batch_size``, ``seq_per_s`` (median of the rounds), ``tokens_per_s``,
  ``mean_tokens``, ``seq_per_s_rounds``}], ``rounds``, ``latency_ms`` {``p50``, ``p95``, ``p99``, ``mean``}
  (batch 1), ``peak_rss_bytes``, or ``speed_error`` when the variant could not be timed;
  for pruned variants ``pruning`` {``method``, ``removed_fraction``, ``encoder_params_before``,
  ``encoder_params_after``, ``layers`` (per original layer: ``heads_kept``, ``neurons_kept``, ``removed``)};
  ``accuracy_seconds`` and ``accuracy`` {task: {``metric``, ``score`` (fraction; Spearman's rho),
  ``n``, ``delta_points`` (100 x (score - torch-fp32 score); null for the baseline), ``kendall_tau`` (rerank:
  mean over queries of Kendall's tau with torch-fp32's scores of its candidates), ``top32_overlap``,
  ``min_top32_overlap``, ``sparse_cosine`` (sparse: the mean and worst share of each vector's top-32 terms
  among torch-fp32's, which is its ``score`` too, and the mean cosine), ``agreement``
  (share of items predicted as torch-fp32 does, or null), ``cosine_to_fp32`` (mean, embedding tasks,
  or null), ``model``, ``artifact``, ``seconds``, and ``error`` when the task failed}}
- ``runtimes`` (with ``--runtimes``): one per model x CPU runtime (see runtimes.py): ``model``, ``runtime``,
  ``engine``, ``variant``, ``artifact``, ``graph``, ``nncf`` (openvino-int8-nncf: how its graph was made), speed.py's
  figures as in ``results``, ``accuracy`` {task: as in ``results``, against torch-fp32}, or ``skipped`` with the
  reason (a missing package, an artifact that could not be made)
- ``misses``: [{``model``, ``variant``, ``task`` (null for speed), ``kind`` ("accuracy" | "agreement" |
  "speed"), ``message``}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common.variants import BASELINE
from benchmarks.run import runtimes_report
from benchmarks.run.criteria import budget, pruning_summary, speedup
from benchmarks.run.plot import plot
from benchmarks.run.results import TASK_LABELS, ordered_tasks, ratio_point, seq_per_s


def _accuracy_cell(res: dict[str, Any], task: str) -> str:
    acc = res.get("accuracy", {}).get(task)
    if not acc:
        return "-"
    if acc.get("error"):
        return "failed"
    cell = f"{100 * acc['score']:.2f}"
    if acc.get("top32_overlap") is not None:  # sparse: the score is the overlap with fp32
        miss = acc["top32_overlap"] < budget(res["variant"]).min_top32_overlap
        return (f"{cell} (worst {100 * acc['min_top32_overlap']:.1f}; cos {acc['sparse_cosine']:.4f})"
                f"{' **miss**' if miss else ''}")
    if acc.get("delta_points") is None:
        return cell
    extra = [f"{acc['delta_points']:+.2f}"]
    if acc.get("agreement") is not None:
        extra.append(f"agree {100 * acc['agreement']:.1f}")
    if acc.get("cosine_to_fp32") is not None:
        extra.append(f"cos {acc['cosine_to_fp32']:.4f}")
    if acc.get("kendall_tau") is not None:
        extra.append(f"tau {acc['kendall_tau']:.3f}")
    miss = acc["delta_points"] < -budget(res["variant"]).max_drop(task)
    return f"{cell} ({'; '.join(extra)}){' **miss**' if miss else ''}"


def _speed_cells(r: dict[str, Any], base: dict[str, Any] | None, head: tuple[str, int] | None) -> list[str]:
    if head is None or not r.get("throughput"):
        return ["-"] * 6
    bucket, bs = head
    tp = seq_per_s(r, bucket, bs) or 0.0
    tok = next((x["tokens_per_s"] for x in r["throughput"] if x["bucket"] == bucket and x["batch_size"] == bs), 0.0)
    ratio = speedup(r, base, bucket, bs)
    lat = r["latency_ms"]
    return [f"{tp:.1f}", f"{ratio:.2f}x" if ratio else "-", f"{tok:.0f}", f"{lat['p50']:.1f}", f"{lat['p99']:.1f}",
            f"{r['peak_rss_bytes'] / 1e6:.0f}"]


def _model_table(report: dict[str, Any], model: str) -> list[str]:
    rows = [r for r in report["results"] if r["model"] == model]
    base = next((r for r in rows if r["variant"] == BASELINE), None)
    head = ratio_point(rows)
    tasks = ordered_tasks(t for r in rows for t in r.get("accuracy", {}))
    where = f"throughput at batch {head[1]}, {head[0]} inputs" if head else "speed not measured"
    cols = ["variant", "size MB", "seq/s", f"x {BASELINE}", "tokens/s", "p50 ms (bs 1)", "p99 ms", "peak RSS MB",
            *[TASK_LABELS.get(t, t) for t in tasks]]
    lines = [f"### {model} ({where})", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.1f}" if r.get("size_bytes") else "-"
        cells = [r["variant"], size, *_speed_cells(r, base, head), *[_accuracy_cell(r, t) for t in tasks]]
        lines.append("| " + " | ".join(cells) + " |")
    summary = pruning_summary(report["results"], model)
    if summary:
        parts = []
        if summary["removed_fraction"] is not None:
            parts.append(f"{100 * summary['removed_fraction']:.1f} % of encoder parameters removed")
        if summary["speedup_over_int8"]:
            parts.append(f"{summary['speedup_over_int8']:.2f}x int8's throughput")
        if summary["smaller_than_fp32_onnx"]:
            parts.append(f"{summary['smaller_than_fp32_onnx']:.2f}x smaller than the fp32 ONNX export")
        lines += ["", "pruned-int8: " + ", ".join(parts) + "."]
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    crit = report.get("criteria", {}).get("speedup", {"variant": "int8", "min": 2.5, "batch_size": 32})
    lines = [f"CPU: {report['cpu']['model']} ({report['cpu']['isa']}), {report['threads']} threads on every side"
             f"{'; quick run' if report.get('quick') else ''}.", "",
             "Accuracy cells: score on held-out data (change vs torch-fp32 in points; agreement with fp32's "
             "per-item predictions in %, cosine to fp32's embeddings). Budgets: "
             + ", ".join(f"{v} -{b['max_drop_points']:g} points" for v, b in report.get("criteria", {})
                         .get("budgets", {}).items())
             + f"; {crit['variant']} should reach {crit['min']:g}x {BASELINE} at batch {crit['batch_size']}.", ""]
    for model in dict.fromkeys(r["model"] for r in report["results"]):
        lines += _model_table(report, model)
    lines += runtimes_report.markdown_lines(report)
    lines += ["### Misses", ""]
    misses = report.get("misses", [])
    lines += [f"- {m['model']} / {m['variant']}: {m['message']}" for m in misses] or [
        "None: every compressed variant is within its accuracy budget on every task, and "
        f"{crit['variant']} reaches {crit['min']:g}x {BASELINE} where both were measured."]
    return "\n".join(lines)


def write_reports(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "benchmark.md").write_text(markdown(report) + "\n")
    plot(report, out / "benchmark.png")
    if report.get("runtimes"):
        runtimes_report.plot(report, out / "runtimes.png")
