"""The human-readable side of an artifact: report.md and the summary table printed at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.artifact import Manifest
from compress.validate import PRIMARY


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _session(s: dict[str, Any]) -> str:
    """The ONNX Runtime session settings the gate ran with (compress.session), for people."""
    off = [name for name, key in (("spin-waiting", "intra_op_spinning"), ("memory pattern", "memory_pattern"),
                                  ("CPU arena", "cpu_memory_arena")) if not s.get(key)]
    return (f"onnxruntime {s.get('onnxruntime', '?')} on {s['device']}, {s['intra_op_threads']} intra-op threads, "
            f"graph optimization {s['graph_optimization']}" + (f", no {', no '.join(off)}" if off else "")
            + " (as served)")


def _rows(m: Manifest) -> list[tuple[str, str]]:
    s, v = m.sizes, m.validation
    key = PRIMARY[m.task]
    size = (f"{_mb(s['fp32_onnx_bytes'])} fp32 ONNX -> {_mb(s['model_bytes'])} "
            f"({s['fp32_onnx_bytes'] / s['model_bytes']:.2f}x smaller)")
    if m.backend == "torch":
        size = (f"weights in memory {_mb(s['fp32_memory_bytes'])} -> {_mb(s['memory_bytes'])} "
                f"({s['fp32_memory_bytes'] / s['memory_bytes']:.2f}x smaller, quantized at load; "
                f"fp32 on disk {_mb(s['model_bytes'])})")
    rows = [
        ("model", f"{m.name} ({m.family}, {m.task})"),
        ("method", m.describe_recipe()),
        ("size", size),
        (key, f"{v[key]:.4f} {_verdict(v, key)}"),
    ]
    rows += _head_rows(m) + _task_rows(v)
    for extra in ("top5_overlap", "top1_accuracy_original", "top1_accuracy", "min_cosine", "max_abs_logit_diff"):
        if extra in v:
            rows.append((extra, f"{v[extra]:.4f}"))
    rows.append(("validation set", f"{int(v['texts'])} texts ({v['data']})"))
    if "session" in v:
        rows.append(("validated in", _session(v["session"])))
    if m.speed:
        sp = m.speed
        rows.append(("speed", f"{sp['torch_fp32_seq_per_s']:.1f} -> {sp['artifact_seq_per_s']:.1f} seq/s "
                              f"({sp['speedup']:.2f}x, batch {sp['batch_size']} x {sp['seq_len']} tokens)"))
    if m.excluded_nodes:
        rows.append(("kept in fp32", f"{len(m.excluded_nodes)} nodes (accuracy gate)"))
    adapted = m.source.get("adaptation")
    if adapted:
        rows.append(("adapted", f"{adapted['steps']} steps on {adapted['data']['path']} (replay ratio "
                                f"{adapted['replay']['ratio']:.2f}): new-domain top-1 {adapted['gain_points']:+.1f}"
                                f" points, original {-adapted['forgetting_points']:+.1f}"))
    return rows + _pruning_rows(m)


def _head_rows(m: Manifest) -> list[tuple[str, str]]:
    """One row per head of a multi-head artifact: its task, output and primary figure against its gate."""
    per_head = m.validation.get("heads", {})
    rows = []
    for h in m.heads or []:
        figs, key = per_head.get(h.name, {}), PRIMARY[h.task]
        if key in figs:
            rows.append((f"head {h.name}", f"{h.task} ({h.output}): {key} {figs[key]:.4f} {_verdict(figs, key)}"))
    return rows


def _verdict(figs: dict[str, Any], key: str) -> str:
    """``(gate >= 0.99: PASS)``; for a head the task gates judge, the agreement threshold is shown, not applied."""
    threshold = figs["threshold"][key]
    if figs.get("judged_by") == "task gates":
        met = "met" if figs.get("agreement_passed") else "missed"
        return f"(threshold {threshold} {met}, not applied: task gates {'PASS' if figs['passed'] else 'FAIL'})"
    return f"(gate >= {threshold}: {'PASS' if figs['passed'] else 'FAIL'})"


def _task_rows(v: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per task gate: each metric original -> artifact, the change in points, the verdict."""
    rows = []
    for g in v.get("task_gates", []):
        figs = ", ".join(f"{name} {x['original']:.4f} -> {x['artifact']:.4f} ({x['change_points']:+.2f} points)"
                         for name, x in g["metrics"].items())
        rows.append((f"task gate {g['kind']}", f"{figs}; head {g['head']}, {g['items']} items of {g['data']} "
                                               f"(tolerance {g['tolerance_points']:g}: "
                                               f"{'PASS' if g['passed'] else 'FAIL'})"))
    return rows


def _pruning_rows(m: Manifest) -> list[tuple[str, str]]:
    p = m.pruning
    if not p:
        return []
    rec = p.get("recovery", {})
    rows = [("pruned", f"{100 * p['removed_fraction']:.1f} % of encoder parameters ({p['method']}), "
                       + (f"recovered {rec['steps']} steps (loss {rec['first_loss']:.3f} -> {rec['last_loss']:.3f})"
                          if rec.get("steps") else "not recovered"))]
    est = p.get("estimated_speedup")
    if est:
        rows.append(("estimated speed-up", f"{est['value']:.2f}x (int8 CPU cost model, {est['seq_len']} tokens; "
                                           "the speed row above is measured)"))
    kept = [r for r in p.get("layers", []) if not r["removed"]]
    if kept:
        rows.append(("layers kept", ", ".join(f"{r['layer']}: {len(r['heads_kept'])}h/{r['neurons_kept']}n"
                                              for r in kept)))
    against = m.validation.get("against_unpruned", {})
    if against:
        rows.append(("vs unpruned fp32", ", ".join(f"{k} {v:.4f}" for k, v in against.items())))
    return rows


def summary_table(m: Manifest, out: Path) -> str:
    rows = _rows(m)
    width = max(len(k) for k, _ in rows)
    lines = [f"artifact written: {out}"] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
    if not m.validation["passed"]:
        lines.append("  WARNING: this artifact FAILS the accuracy gate (written because of --no-gate)")
    lines += [f"  note: {n}" for n in m.notes]
    return "\n".join(lines)


def _search_section(directory: Path, pruning: dict[str, Any]) -> list[str]:
    """``--prune auto``: the candidates tried (PyTorch fp32, before quantization) and the plot beside the report."""
    from compress.prune.search_report import PLOT_FILE, plot_search, search_table

    search = pruning["search"]
    removed = ", ".join(map(str, pruning.get("layers_removed", []))) or "none"
    lines = ["### Search (--prune auto)", "",
             f"Candidates pruned, distilled and scored on the task gates as PyTorch fp32 models, against the "
             f"original; speed-up from the {search['speed']}. Chosen: {search['chosen']} (layers removed: "
             f"{removed}).", "", *search_table(search), ""]
    if plot_search(directory / PLOT_FILE, search):
        lines += [f"![speed against the task figure]({PLOT_FILE})", ""]
    return lines


def write_report(directory: Path, m: Manifest, command: str) -> None:
    lines = [f"# {m.name}: {m.method} artifact", ""]
    if command:
        lines += ["Made with:", "", f"    {command}", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _rows(m)]
    lines += ["", f"Source: `{m.source['path']}` (sha256 `{m.source['sha256']}`)",
              f"CPU: {m.cpu['model']} ({m.cpu['isa']}); tools: "
              + ", ".join(f"{k} {v}" for k, v in m.tools.items()), f"Created: {m.created}", ""]
    if m.validation.get("sensitivity"):
        lines += ["## Accuracy gate", "",
                  "Closeness to the original with only this group quantized (top-5 overlap, minus the mean "
                  "absolute logit difference, or cosine; lower = more sensitive):", ""]
        lines += [f"- {g}: {s:.4f}" for g, s in sorted(m.validation["sensitivity"].items(), key=lambda x: x[1])]
        lines += ["", "Kept in higher precision: " + ", ".join(f"`{n}`" for n in m.excluded_nodes), ""]
    if m.validation.get("task_gates"):
        lines += ["## Task gates", "", "The artifact against the original PyTorch model on each gate's data (change "
                  "in points, 1 point = 0.01); these decide for the heads they cover, in place of the agreement "
                  "threshold:", "", "| gate | head | metric | original | artifact | change | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for g in m.validation["task_gates"]:
            lines += [f"| `{g['gate']}` | {g['head']} | {name} | {x['original']:.4f} | {x['artifact']:.4f} | "
                      f"{x['change_points']:+.2f} | {'PASS' if g['passed'] else 'FAIL'} |"
                      for name, x in g["metrics"].items()]
        lines.append("")
    if m.pruning:
        lines += ["## Pruning", ""]
        if m.pruning.get("validation"):
            lines += ["Validation figures against the unpruned fp32 model (held-out texts):", ""]
            for stage, figs in m.pruning["validation"].items():
                lines.append(f"- after {stage}: " + ", ".join(f"{k} {v:.4f}" for k, v in figs.items()))
            lines.append("")
        if m.pruning.get("search"):
            lines += _search_section(directory, m.pruning)
    if m.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in m.notes] + [""]
    (directory / "report.md").write_text("\n".join(lines))
